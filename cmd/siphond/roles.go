package main

// The roles this binary runs: each registers itself with pkg/role from its
// package. Adding a role is its folder and one line here.
import (
	_ "github.com/siphon-lab/siphon/services/b2bua"
	_ "github.com/siphon-lab/siphon/services/edge"
	_ "github.com/siphon-lab/siphon/services/events"
	_ "github.com/siphon-lab/siphon/services/proxy"
	_ "github.com/siphon-lab/siphon/services/registrar"
	_ "github.com/siphon-lab/siphon/services/uas"
)
