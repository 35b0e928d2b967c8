// Command true exits 0 at once: the container of the runtime benchmark.
package main

func main() {}
