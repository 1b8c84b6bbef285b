package smtpd

import (
	"context"
	"errors"
	"io"
	"time"
)

// Without a declared size, a message is read in chunks that grow from
// firstChunk to readChunk: small posts, the common case, take little.
const (
	firstChunk = 64 << 10
	readChunk  = 1 << 20
)

// budgetNeed is the most one message of max bytes takes from the budget:
// its chunks (the last one partly empty, the first of them small) and the
// slice they are joined into.
func budgetNeed(max int64) int64 { return 2*max + min(max, readChunk) + firstChunk + 4096 }

// budgetWait is how long a message waits for memory before the sender is
// told to come back later.
const budgetWait = 30 * time.Second

// errBusy: the memory budget for messages stayed full; 451 4.3.1.
var errBusy = errors.New("the list server is receiving too much mail at once")

// readMessage reads a whole message into one slice of exactly its size,
// taking what it holds from acct (the caller finishes acct when done with
// the message, whatever the error). With the size the client
// declared (RFC 1870 SIZE) it reads straight into a slice of that size;
// without, into 1 MB chunks joined at the end, never into a buffer that
// doubles and leaves its old halves behind.
func readMessage(r io.Reader, declared int64, acct *budgetAccount) (data []byte, err error) {
	take := func(n int64) bool {
		ctx, cancel := context.WithTimeout(context.Background(), budgetWait)
		defer cancel()
		return acct.take(ctx, n)
	}
	if declared > 0 {
		if !take(declared + 4096) {
			return nil, errBusy
		}
		buf := make([]byte, 0, declared+4096)
		for {
			if len(buf) == cap(buf) {
				// The client declared less than it sends: go on in chunks.
				rest, err := readChunks(r, take)
				return append(buf, rest...), err
			}
			n, err := r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if errors.Is(err, io.EOF) {
				return buf, nil
			}
			if err != nil {
				return buf, err
			}
		}
	}
	return readChunks(r, take)
}

func readChunks(r io.Reader, take func(int64) bool) ([]byte, error) {
	var chunks [][]byte
	total := 0
	size := firstChunk
	for {
		if !take(int64(size)) {
			return nil, errBusy
		}
		chunk := make([]byte, size)
		size = min(2*size, readChunk)
		n, err := io.ReadFull(r, chunk)
		chunks = append(chunks, chunk[:n])
		total += n
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if len(chunks) == 1 {
		return chunks[0], nil
	}
	// Joining needs the message once more, briefly: take it too.
	if !take(int64(total)) {
		return nil, errBusy
	}
	out := make([]byte, 0, total)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return out, nil
}
