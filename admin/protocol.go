// Package admin is the admin socket: the Unix socket through which the
// `isaclist` commands ask the running daemon to act. One request per
// connection, as one line of JSON each way. The daemon checks the peer's
// credentials (SO_PEERCRED), not only the socket file's mode.
package admin

import (
	"encoding/json"
	"io"
)

// MaxRequestBytes bounds one request (a key file is the largest part).
const MaxRequestBytes = 4 << 20

// Request is one admin command.
type Request struct {
	Op   string `json:"op"`
	List string `json:"list,omitempty"`
	// As is the board role the caller acts in (chair, vice-chair,
	// secretary), recorded in the audit trail.
	As   string          `json:"as,omitempty"`
	Args json.RawMessage `json:"args,omitempty"`
	// Protocol is the client's ProtocolVersion (0 from clients that
	// predate the handshake).
	Protocol int `json:"protocol,omitempty"`
}

// Response is the daemon's answer.
type Response struct {
	OK       bool            `json:"ok"`
	Error    string          `json:"error,omitempty"`
	Warnings []string        `json:"warnings,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	// Stream, when set, is the number of raw bytes that follow the
	// response line (a backup).
	Stream int64 `json:"stream,omitempty"`
	// Denied: the caller may not administer (Error says who may).
	Denied bool `json:"denied,omitempty"`
}

// Stream is a result sent as raw bytes after the response line: the
// database for `isaclist backup`, written by the command (the daemon may
// not write outside its data directory).
type Stream interface {
	Size() int64
	WriteTo(w io.Writer) (int64, error)
	Close() error
}
