package shim

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// credential is who the container's process runs as.
type credential struct {
	uid, gid int
	groups   []int // supplementary groups, the primary group first
}

// resolveUser turns "user[:group]" and the extra groups into ids with the
// container's /etc/passwd and /etc/group (the init has already pivoted into
// the container's root), with docker's rules: a name that is not found is
// an error; a numeric uid without a passwd entry runs with gid 0 and home
// /; the supplementary groups are those of /etc/group that list the user
// by name, plus extra (names or gids).
func resolveUser(spec string, extra []string) (credential, string, error) {
	cred := credential{}
	home := "/root"
	userName := "root"
	if spec != "" {
		userPart, groupPart, hasGroup := strings.Cut(spec, ":")
		home, userName = "/", ""
		if uid, err := strconv.Atoi(userPart); err == nil {
			if uid < 0 {
				return cred, "", fmt.Errorf("invalid user %q: a uid must not be negative", spec)
			}
			cred.uid = uid
			if e, ok := lookupDB("/etc/passwd", func(f []string) bool { return f[2] == userPart }); ok {
				cred.gid, _ = strconv.Atoi(e[3])
				home, userName = e[5], e[0]
			} else if uid == 0 {
				home = "/root"
			}
		} else {
			e, ok := lookupDB("/etc/passwd", func(f []string) bool { return f[0] == userPart })
			if !ok {
				return cred, "", fmt.Errorf("unable to find user %s: no matching entries in passwd file", userPart)
			}
			cred.uid, _ = strconv.Atoi(e[2])
			cred.gid, _ = strconv.Atoi(e[3])
			home, userName = e[5], e[0]
		}
		if hasGroup {
			gid, err := lookupGroup(groupPart)
			if err != nil {
				return cred, "", err
			}
			cred.gid = gid
		}
	}
	cred.groups = []int{cred.gid}
	add := func(gid int) {
		for _, g := range cred.groups {
			if g == gid {
				return
			}
		}
		cred.groups = append(cred.groups, gid)
	}
	if userName != "" {
		forEachDB("/etc/group", func(f []string) {
			for _, m := range strings.Split(f[3], ",") {
				if m == userName {
					if gid, err := strconv.Atoi(f[2]); err == nil {
						add(gid)
					}
				}
			}
		})
	}
	for _, g := range extra {
		gid, err := lookupGroup(g)
		if err != nil {
			return cred, "", err
		}
		add(gid)
	}
	return cred, home, nil
}

// lookupGroup resolves a group name or numeric gid.
func lookupGroup(g string) (int, error) {
	if gid, err := strconv.Atoi(g); err == nil {
		if gid < 0 {
			return 0, fmt.Errorf("invalid group %q: a gid must not be negative", g)
		}
		return gid, nil
	}
	e, ok := lookupDB("/etc/group", func(f []string) bool { return f[0] == g })
	if !ok {
		return 0, fmt.Errorf("unable to find group %s: no matching entries in group file", g)
	}
	gid, err := strconv.Atoi(e[2])
	if err != nil {
		return 0, fmt.Errorf("group %s has an invalid gid %q in the group file", g, e[2])
	}
	return gid, nil
}

// lookupDB returns the first colon-separated line of file (padded to 7
// fields) that match accepts.
func lookupDB(file string, match func([]string) bool) ([]string, bool) {
	var found []string
	forEachDB(file, func(f []string) {
		if found == nil && match(f) {
			found = f
		}
	})
	return found, found != nil
}

// forEachDB calls fn with every entry of a colon-separated file such as
// /etc/passwd, padded to 7 fields. A missing file has no entries.
func forEachDB(file string, fn func([]string)) {
	f, err := os.Open(file)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, ":")
		for len(fields) < 7 {
			fields = append(fields, "")
		}
		fn(fields)
	}
}
