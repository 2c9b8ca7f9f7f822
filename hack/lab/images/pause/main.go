// Command pause is the e2e lab's pod sandbox ("pause") image: it holds the
// pod's namespaces by doing nothing until SIGINT or SIGTERM, then exits 0.
//
// Build it static: CGO_ENABLED=0 go build ./hack/lab/images/pause
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}
