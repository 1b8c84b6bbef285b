package queue

import (
	"fmt"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/store"
)

// Notify queues a notice in tx, one copy to each of its recipients, from
// the null sender (a notice's bounce must never loop). A notice to nobody
// (a list without owners) is not an error: there is nobody to tell.
func Notify(tx *store.Tx, out compose.Outgoing, n compose.Notice) error {
	if len(n.To) == 0 {
		return nil
	}
	body, err := out.Build(n)
	if err != nil {
		return fmt.Errorf("building a notice: %w", err)
	}
	ds := make([]store.Delivery, 0, len(n.To))
	for _, rcpt := range n.To {
		ds = append(ds, store.Delivery{Rcpt: rcpt, NullSender: true, Next: out.Now})
	}
	return tx.Enqueue(&store.Message{ID: out.ID, List: out.List.Address, Kind: store.KindNotice, Received: out.Now, Size: len(body)}, body, ds)
}
