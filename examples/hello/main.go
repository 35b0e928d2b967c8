// Command hello is the demo container program: it prints its hostname and
// pid, then a counter every second, and says "bye" and exits 0 on SIGTERM.
//
//	-exit N        exit immediately with code N
//	-listen :PORT  also serve the hostname over HTTP
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	exit := flag.Int("exit", -1, "exit immediately with this code")
	listen := flag.String("listen", "", "serve the hostname over HTTP on this address")
	flag.Parse()

	// The handler is in place before the greeting: tests send the stop
	// signal once they see it.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	host, _ := os.Hostname()
	fmt.Printf("hello from %s pid %d\n", host, os.Getpid())
	if *exit >= 0 {
		os.Exit(*exit)
	}
	if *listen != "" {
		go func() {
			err := http.ListenAndServe(*listen, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprintln(w, host)
			}))
			fmt.Fprintln(os.Stderr, "listen:", err)
		}()
	}
	tick := time.NewTicker(time.Second)
	for n := 1; ; n++ {
		select {
		case <-sigs:
			fmt.Println("bye")
			return
		case <-tick.C:
			fmt.Printf("tick %d\n", n)
		}
	}
}
