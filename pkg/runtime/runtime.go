package runtime

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Config configures a Runtime.
type Config struct {
	// Root is the directory holding layers, images and containers. It must
	// be on a filesystem that supports overlayfs upper directories and
	// trusted.* xattrs (ext4, xfs). Required.
	Root string
	// CgroupParent is the cgroup, relative to each hierarchy's root, under
	// which one cgroup per container is created. Default "minke".
	CgroupParent string
	// CgroupMount is where cgroup hierarchies are mounted. Default
	// "/sys/fs/cgroup". A unified (v2) mount is recognised by its
	// cgroup.controllers file; otherwise v1 controllers are expected in
	// subdirectories (memory, cpu, pids).
	CgroupMount string
	// InsecureRegistries lists registries (host:port) reached over plain
	// HTTP. Loopback registries always use HTTP.
	InsecureRegistries []string
	// RegistryConfig is a docker config.json (or a directory holding one)
	// with registry credentials. Default: $DOCKER_CONFIG, else the
	// keychain of go-containerregistry ($HOME/.docker/config.json).
	RegistryConfig string
	// MaxLayerFileSize is the largest file a layer may hold; a larger one
	// fails the pull with ErrOversize. Default DefaultMaxLayerFileSize.
	MaxLayerFileSize int64
	// PullProgressInterval is the least time between two progress reports
	// of a pull (see WithPullProgress). Default 500ms.
	PullProgressInterval time.Duration
	// Logger receives the runtime's logs; component=runtime is added.
	// Default: discard.
	Logger *slog.Logger
	// LogMaxSize is the size in bytes at which a container's log is
	// rotated; 0 means DefaultLogMaxSize, negative means never.
	LogMaxSize int64
	// LogMaxFiles is how many log files a container keeps, the current one
	// included; 0 means DefaultLogMaxFiles.
	LogMaxFiles int
	// HelperBinary is the program executed as each container's shim, init
	// and exec helper; it must call MaybeRunInit first thing. Default: the
	// minke-shim binary (HelperName) next to the running executable if there
	// is one, else the running executable itself. A small helper binary
	// starts in a fraction of the time the worker binary takes (package
	// initialisation), twice per container.
	HelperBinary string
}

// Runtime owns the images and containers under one root directory. All
// methods are safe for concurrent use.
type Runtime struct {
	root     string
	insecure map[string]bool
	log      *slog.Logger
	cgroups  cgroupManager

	images       *imageState
	exe          string // the binary re-executed as shim and init
	cgroupMount  string
	cgroupParent string
	logMaxSize   int64
	logMaxFiles  int

	mu      sync.Mutex
	flights map[string]*flight // in-progress pulls and layer unpacks, by key

	closed bool           // under mu: Close was called
	warm   chan *shimProc // the next Start's shim, started ahead
	bg     sync.WaitGroup // background deletions and warm shim starts
}

// Close waits for the background work of Remove (deleting the files of
// removed containers) and ends the warm shim. Containers keep running:
// they belong to their shims, not to this Runtime.
func (r *Runtime) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.bg.Wait()
	r.closeWarm()
	return nil
}

// New prepares the root directory and detects the cgroup hierarchy.
func New(cfg Config) (*Runtime, error) {
	if cfg.Root == "" {
		return nil, fmt.Errorf("runtime: Config.Root is required")
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("runtime: root %q: %w", cfg.Root, err)
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "minke"
	}
	if cfg.CgroupMount == "" {
		cfg.CgroupMount = "/sys/fs/cgroup"
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	logger = logger.With("component", "runtime")
	for _, d := range []string{"layers", "images", "containers", "tmp", "trash"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o711); err != nil {
			return nil, fmt.Errorf("runtime: creating %s: %w", d, err)
		}
	}
	cg, err := detectCgroups(cfg.CgroupMount, cfg.CgroupParent)
	if err != nil {
		return nil, err
	}
	images, err := newImageState(cfg)
	if err != nil {
		return nil, err
	}
	insecure := make(map[string]bool, len(cfg.InsecureRegistries))
	for _, r := range cfg.InsecureRegistries {
		insecure[r] = true
	}
	if cfg.LogMaxSize == 0 {
		cfg.LogMaxSize = DefaultLogMaxSize
	}
	if cfg.LogMaxFiles < 0 {
		return nil, fmt.Errorf("runtime: Config.LogMaxFiles %d is negative", cfg.LogMaxFiles)
	}
	if cfg.LogMaxFiles == 0 {
		cfg.LogMaxFiles = DefaultLogMaxFiles
	}
	logger.Debug("runtime ready", "root", root, "cgroup_version", cg.Version())
	return &Runtime{
		root:     root,
		insecure: insecure,
		log:      logger,
		cgroups:  cg,
		images:   images,

		exe:          helperBinary(cfg.HelperBinary),
		cgroupMount:  cfg.CgroupMount,
		cgroupParent: cfg.CgroupParent,
		logMaxSize:   cfg.LogMaxSize,
		logMaxFiles:  cfg.LogMaxFiles,
		flights:      make(map[string]*flight),
		warm:         make(chan *shimProc, 1),
	}, nil
}

func (r *Runtime) layerDir(diffIDHex string) string {
	return filepath.Join(r.root, "layers", diffIDHex)
}

func (r *Runtime) containerDir(id string) string {
	return filepath.Join(r.root, "containers", id)
}

// LogPath is the file receiving the container's stdout and stderr as JSON
// lines (LogEntry); rotated files are LogPath.1 (newest) and up. It
// outlives the container process and is deleted by Remove. ReadLogs reads
// it.
func (r *Runtime) LogPath(id string) string {
	return filepath.Join(r.containerDir(id), "container.log")
}
