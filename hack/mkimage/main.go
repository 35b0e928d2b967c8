// Command mkimage builds a one-layer OCI image from a Go main package (a
// static binary) and writes it as an OCI image-layout tarball, for the demo
// and tests: there is no Docker engine on the machines minke is built on.
//
//	go run ./hack/mkimage -o build/hello.tar -tag hello:latest ./examples/hello
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/minke-io/minke/internal/testimage"
)

func main() {
	out := flag.String("o", "image.tar", "output tarball")
	tag := flag.String("tag", "hello:latest", "NAME:TAG recorded in the tarball")
	docker := flag.Bool("docker", false, "write a docker-save tarball instead of an OCI layout")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: mkimage [-o FILE] [-tag NAME:TAG] [-docker] GO_MAIN_PACKAGE_DIR")
		os.Exit(2)
	}
	img, err := testimage.Build(context.Background(), flag.Arg(0))
	if err == nil {
		if *docker {
			err = testimage.WriteDockerTarball(*out, img, *tag)
		} else {
			err = testimage.WriteOCITarball(*out, img, *tag)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}
