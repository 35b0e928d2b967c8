// Command nettool is the helper the netharness tests run inside hosts.
//
//	nettool serve ADDR        echo server; prints "listening ADDR" and "accepted from ADDR"; exits 0 on SIGTERM
//	nettool dial ADDR TIMEOUT connect, send a line, expect it echoed; exit 0 on success
//	nettool stubborn          ignores SIGTERM; prints "ready"; runs until killed
//	nettool spawn             starts "nettool stubborn" in a new session (out of
//	                          its process group), prints "child PID", runs until killed
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: nettool serve|dial|stubborn|spawn ...")
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2])
	case "dial":
		d, err := time.ParseDuration(os.Args[3])
		if err != nil {
			fail(err.Error())
		}
		dial(os.Args[2], d)
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		sleepForever()
	case "spawn":
		cmd := exec.Command(os.Args[0], "stubborn")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			fail(err.Error())
		}
		fmt.Printf("child %d\n", cmd.Process.Pid)
		sleepForever()
	default:
		fail("unknown mode " + os.Args[1])
	}
}

func serve(addr string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fail(err.Error())
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		fmt.Println("terminating")
		os.Exit(0)
	}()
	fmt.Println("listening", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			fail(err.Error())
		}
		fmt.Println("accepted from", c.RemoteAddr())
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

func dial(addr string, timeout time.Duration) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		fail(err.Error())
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintln(c, "ping"); err != nil {
		fail(err.Error())
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		fail(fmt.Sprintf("echo: %q, %v", line, err))
	}
	fmt.Println("ok")
}

// sleepForever blocks without tripping the runtime's deadlock detector.
func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "nettool:", msg)
	os.Exit(1)
}
