// Command probe is the healthcheck of siphon's images, which are FROM scratch and
// have no shell or curl: it GETs a URL and exits 0 on 200, 1 otherwise.
//
//	probe http://127.0.0.1:9090/readyz
package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: probe URL")
		os.Exit(2)
	}
	client := &http.Client{Timeout: 3 * time.Second}
	res, err := client.Get(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "probe:", res.Status)
		os.Exit(1)
	}
}
