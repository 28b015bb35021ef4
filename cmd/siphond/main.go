// Command siphond is the siphon SIP test lab: one binary that runs the edge and
// any of the roles, in one process or as many.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}
