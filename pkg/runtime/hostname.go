package runtime

// Hostname is the hostname a container with this ID gets.
func Hostname(id string) string { return hostname(id) }
