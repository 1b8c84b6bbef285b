package doctor

import (
	"context"
	"encoding/json"

	"github.com/isaclist/isaclist/admin"
)

// socketAdmin is the AdminFunc of a real deployment: admin.Do against the
// daemon's socket, bounded by the check's context. Its errors wrap
// admin.ErrNotRunning when nothing listens and os.ErrPermission when the
// caller may not administer.
func socketAdmin(socket string) AdminFunc {
	return func(ctx context.Context, op, list string, args, out any) ([]string, error) {
		req := admin.Request{Op: op, List: list}
		if args != nil {
			b, err := json.Marshal(args)
			if err != nil {
				return nil, err
			}
			req.Args = b
		}
		return admin.Do(ctx, socket, req, out)
	}
}
