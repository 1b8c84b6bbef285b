// Package deploy holds what an installation is made of: the systemd unit,
// the example configuration, the certificate hook, the operator's guide
// and the Debian packaging (build-deb). The binary carries the example
// configuration, so that `isaclist init` can write a first one.
package deploy

import _ "embed" // for go:embed

// Example is deploy/isaclist.example.toml: every key with its default and
// its comment. The Debian package installs it as /etc/isaclist/isaclist.toml.
//
//go:embed isaclist.example.toml
var Example []byte

// ExampleHostname is the example's hostname, which `isaclist init`
// replaces, and which isaclist-install-cert refuses to work with.
const ExampleHostname = "lists.energy-isac.example"
