package admin

import (
	"context"
	"encoding/json"
	"fmt"
)

// Call is one request as its handler sees it.
type Call struct {
	Caller Caller
	// List is the list the request is about: the one named, or the only
	// one hosted; "" for server-wide operations.
	List string
	// As is the board role the caller acts in.
	As string
}

type route func(ctx context.Context, c Call, args json.RawMessage) (any, []string, error)

// Mux routes requests to the handlers the daemon registered, by operation.
type Mux struct {
	// ResolveList finds the list a request is about (the one named, or
	// the only one hosted), or says why it cannot.
	ResolveList func(named string) (string, error)
	// CheckRole refuses a role that is not one of the board's.
	CheckRole func(role string) error

	routes map[string]route
}

// Handle registers h for op; its arguments are decoded into an A.
func Handle[A any](m *Mux, op string, h func(ctx context.Context, c Call, args A) (any, []string, error)) {
	if m.routes == nil {
		m.routes = map[string]route{}
	}
	m.routes[op] = func(ctx context.Context, c Call, raw json.RawMessage) (any, []string, error) {
		var args A
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &args); err != nil {
				return nil, nil, fmt.Errorf("malformed arguments for %s: %v", op, err)
			}
		}
		return h(ctx, c, args)
	}
}

// NoArgs is the argument type of operations that take none.
type NoArgs struct{}

// Serve runs one request: it is the daemon's Handler.
func (m *Mux) Serve(ctx context.Context, caller Caller, req Request) (any, []string, error) {
	if req.Protocol != 0 && req.Protocol != ProtocolVersion {
		return nil, nil, fmt.Errorf("this isaclist command speaks admin protocol %d and the daemon %d: run the command of the same version as the daemon (isaclist --version)", req.Protocol, ProtocolVersion)
	}
	r, ok := m.routes[req.Op]
	if !ok {
		return nil, nil, fmt.Errorf("unknown request %q (is the isaclist command newer than the daemon?)", req.Op)
	}
	if m.CheckRole != nil {
		if err := m.CheckRole(req.As); err != nil {
			return nil, nil, err
		}
	}
	c := Call{Caller: caller, As: req.As}
	if !ServerWide[req.Op] && m.ResolveList != nil {
		list, err := m.ResolveList(req.List)
		if err != nil {
			return nil, nil, err
		}
		c.List = list
	}
	return r(ctx, c, req.Args)
}
