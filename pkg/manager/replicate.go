package manager

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/minke-io/minke/pkg/raftstore"
	"github.com/minke-io/minke/pkg/registry"
)

// Images pushed to any manager's built-in registry are copied to the other
// managers before the push is acknowledged, to a majority of all managers
// at least, so an image survives the loss of any minority of managers. A
// manager that missed a copy (it was down) fetches the image from a peer
// when a service needs it (see resolveImage).

// replicaTransport marks copies so the receiving registry does not copy
// them again.
type replicaTransport struct{ base http.RoundTripper }

func (t replicaTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set(registry.ReplicaHeader, "1")
	return t.base.RoundTrip(req)
}

// peerRegistries lists the registry addresses of the other managers that
// are Raft voters now (node records of managers long gone do not count).
func (m *Manager) peerRegistries() []string {
	servers, _ := m.raft.Servers()
	voters := map[string]bool{}
	for _, s := range servers {
		voters[s.ID] = s.Voter
	}
	var out []string
	_ = m.raft.View(func(tx raftstore.ReadTx) error {
		for _, n := range tx.Nodes() {
			id := n.GetMeta().GetId()
			if a := n.GetManagerStatus().GetRegistryAddr(); a != "" && voters[id] && id != m.nodeID {
				out = append(out, a)
			}
		}
		return nil
	})
	return out
}

// copyImage copies repo:tag (an image or an index) between registries of
// the cluster, over tr (registryTransport).
func copyImage(ctx context.Context, tr http.RoundTripper, from, to, repo, tag string) error {
	src, err := name.ParseReference(from + "/" + repo + ":" + tag)
	if err != nil {
		return err
	}
	dst, err := name.ParseReference(to + "/" + repo + ":" + tag)
	if err != nil {
		return err
	}
	desc, err := remote.Get(src, remote.WithContext(ctx), remote.WithTransport(tr))
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(replicaTransport{tr})}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return err
		}
		return remote.WriteIndex(dst, idx, opts...)
	}
	img, err := desc.Image()
	if err != nil {
		return err
	}
	return remote.Write(dst, img, opts...)
}

// replicatePush copies a freshly pushed tag to every other manager and
// fails unless, counting this one, a majority of managers hold it.
func (m *Manager) replicatePush(ctx context.Context, repo, tag, digest string) error {
	peers := m.peerRegistries()
	if len(peers) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	// Copies run on their own bounded context: once a majority holds the
	// image the push is answered, and the rest finish in the background.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	results := make(chan error, len(peers))
	var copying sync.WaitGroup
	for _, p := range peers {
		copying.Add(1)
		go func() {
			defer copying.Done()
			err := copyImage(cctx, m.registryTransport(), m.regLis.Addr().String(), p, repo, tag)
			if err != nil {
				err = fmt.Errorf("%s: %w", p, err)
			}
			results <- err
		}()
	}
	go func() { copying.Wait(); cancel() }() // release the context once every copy is done
	total, need := len(peers)+1, (len(peers)+1)/2+1
	copies := 1 // this manager's
	var errs []string
	for i := range peers {
		select {
		case err := <-results:
			if err != nil {
				errs = append(errs, err.Error())
			} else {
				copies++
			}
		case <-ctx.Done():
			return ctx.Err()
		}
		if copies >= need {
			if len(errs) > 0 {
				m.log.Warn("image not copied to every manager; they fetch it when needed", "repo", repo, "tag", tag, "errors", strings.Join(errs, "; "))
			}
			return nil
		}
		if copies+len(peers)-(i+1) < need {
			break // a majority is out of reach
		}
	}
	return fmt.Errorf("%s:%s (%s) is on %d of %d managers, fewer than a majority: %s",
		repo, tag, digest, copies, total, strings.Join(errs, "; "))
}

// fetchFromPeers copies repo:tag from the first manager that has it.
func (m *Manager) fetchFromPeers(ctx context.Context, repo, tag string) bool {
	for _, p := range m.peerRegistries() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := copyImage(cctx, m.registryTransport(), p, m.regLis.Addr().String(), repo, tag)
		cancel()
		if err == nil {
			m.log.Info("fetched image from another manager", "repo", repo, "tag", tag, "from", p)
			return true
		}
	}
	return false
}

// missCache remembers images no manager had, so that an image pulled from
// an outside registry (the usual case) does not cost a round of peer
// look-ups on every reconcile.
type missCache struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

const missTTL = 10 * time.Second

func (c *missCache) shouldTry(image string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.seen[image]
	return !ok || time.Since(t) > missTTL
}

func (c *missCache) missed(image string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]time.Time{}
	}
	c.seen[image] = time.Now()
}
