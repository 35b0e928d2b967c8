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

	minkepb "github.com/minke-io/minke/api/minkepb"
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

// peerRegistries lists the other managers' registry addresses.
func (m *Manager) peerRegistries() []string {
	var out []string
	_ = m.raft.View(func(tx raftstore.ReadTx) error {
		for _, n := range tx.Nodes() {
			if a := n.GetManagerStatus().GetRegistryAddr(); a != "" && n.GetRole() == minkepb.NodeRole_MANAGER &&
				n.GetMeta().GetId() != m.nodeID {
				out = append(out, a)
			}
		}
		return nil
	})
	return out
}

// copyImage copies repo:tag (an image or an index) between registries.
func copyImage(ctx context.Context, from, to, repo, tag string) error {
	src, err := name.ParseReference(from+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		return err
	}
	dst, err := name.ParseReference(to+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		return err
	}
	desc, err := remote.Get(src, remote.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(replicaTransport{http.DefaultTransport})}
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
	var (
		mu     sync.Mutex
		copies = 1 // this manager's
		errs   []string
		wg     sync.WaitGroup
	)
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := copyImage(ctx, m.regLis.Addr().String(), p, repo, tag)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, p+": "+err.Error())
				return
			}
			copies++
		}()
	}
	wg.Wait()
	total := len(peers) + 1
	if copies < total/2+1 {
		return fmt.Errorf("%s:%s (%s) is on %d of %d managers, fewer than a majority: %s",
			repo, tag, digest, copies, total, strings.Join(errs, "; "))
	}
	if len(errs) > 0 {
		m.log.Warn("image not copied to every manager; they fetch it when needed", "repo", repo, "tag", tag, "errors", strings.Join(errs, "; "))
	}
	return nil
}

// fetchFromPeers copies repo:tag from the first manager that has it.
func (m *Manager) fetchFromPeers(ctx context.Context, repo, tag string) bool {
	for _, p := range m.peerRegistries() {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := copyImage(cctx, p, m.regLis.Addr().String(), repo, tag)
		cancel()
		if err == nil {
			m.log.Info("fetched image from another manager", "repo", repo, "tag", tag, "from", p)
			return true
		}
	}
	return false
}
