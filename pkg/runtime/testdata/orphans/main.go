// Command orphans leaves an orphan behind for the --init test: it runs a
// child that starts a grandchild and exits at once, so the grandchild is
// re-parented to the container's pid 1 and, once it exits, stays a zombie
// unless pid 1 reaps it. Then it prints "orphaned" and waits for SIGTERM.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	switch {
	case len(os.Args) > 1 && os.Args[1] == "child":
		if err := exec.Command(os.Args[0], "grandchild").Start(); err != nil {
			fmt.Fprintln(os.Stderr, "starting grandchild:", err)
			os.Exit(1)
		}
		return // without waiting: the grandchild is orphaned
	case len(os.Args) > 1 && os.Args[1] == "grandchild":
		time.Sleep(100 * time.Millisecond)
		return
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	if err := exec.Command(os.Args[0], "child").Run(); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	fmt.Printf("orphaned, pid %d\n", os.Getpid())
	<-sigs
	fmt.Println("bye")
}
