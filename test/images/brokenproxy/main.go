// Command brokenproxy is the entrypoint of the kamal-proxy:broken fixture image: a proxy image
// that cannot start. It says so on stderr and exits 1 at once, whatever its arguments.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "kamal-proxy:broken: this test image cannot start (exit 1)")
	os.Exit(1)
}
