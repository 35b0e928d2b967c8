# minke build, test and demo. `make demo` and `make test` work on a fresh
# machine (root, Debian, Go): they install what they need.

GO            ?= go
BIN           := $(CURDIR)/bin
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
PROTOS        := $(wildcard api/proto/minke/v1/*.proto)
DEMO_DIR      := $(CURDIR)/build/demo
APT_PACKAGES  := protobuf-compiler busybox-static iproute2 curl

.PHONY: all build proto proto-check deps test demo demo-stop clean tools

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/manager ./cmd/swarmctl
	# Static, no libc to load and keep mapped: the worker (smaller idle RSS)
	# and the shim helper, exec'd as the init of every container.
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./cmd/worker ./cmd/minke-shim

# deps installs the system packages and Go modules the build and tests need.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	$(GO) mod download

tools: $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc

$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(BIN)/protoc-gen-go-grpc:
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

# proto regenerates api/minkepb from api/proto with pinned generators.
proto: tools
	rm -f api/minkepb/*.pb.go
	PATH=$(BIN):$$PATH protoc -I api/proto \
		--go_out=. --go_opt=module=github.com/minke-io/minke \
		--go-grpc_out=. --go-grpc_opt=module=github.com/minke-io/minke \
		$(PROTOS)

# proto-check fails when the committed generated code is stale.
proto-check: proto
	@git diff --exit-code --stat -- api/minkepb || { echo "generated code in api/minkepb is stale: run 'make proto' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api/minkepb)" || { echo "api/minkepb has uncommitted generated files: run 'make proto' and commit"; exit 1; }

test: deps proto-check
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 12m ./...

demo: build
	./hack/demo.sh start

demo-stop:
	./hack/demo.sh stop

clean:
	-./hack/demo.sh stop 2>/dev/null
	rm -rf $(BIN) build

.PHONY: bench-create
bench-create: build
	go test -run '^$$' -bench BenchmarkCreateToRunning -benchtime 5x -count 1 ./test/e2e

.PHONY: bench-ha
bench-ha: build
	go test -run '^$$' -bench BenchmarkHA -benchtime 1x -count 1 -timeout 10m ./test/habench

.PHONY: bench-failover
bench-failover: build
	go test -run '^$$' -bench BenchmarkFailover -benchtime 1x -count 1 -timeout 10m ./test/failoverbench

# bench-scheduler prints issue 5's scheduling figures side by side: the pure
# scheduler, and end to end through 1 and 3 manager processes with one
# simulated worker process acting as 5,000 nodes (100,000 tasks).
.PHONY: bench-scheduler
bench-scheduler: build
	go test -run '^$$' -bench BenchmarkScheduler -benchtime 1x -count 1 -timeout 40m ./test/schedbench

# bench-runtime prints the median and p99 of create→start→exit→remove for
# 100 true-like containers, next to runc's on the same rootfs (when runc is
# installed), then the idle worker's and one shim's resident memory.
.PHONY: bench-runtime
bench-runtime: build
	go test -run '^$$' -bench BenchmarkContainerLifecycle -benchtime 1x -count 1 -timeout 20m ./pkg/runtime
	go test -run '^$$' -bench BenchmarkWorkerIdleRSS -benchtime 1x -count 1 -timeout 5m ./test/e2e

.PHONY: bench-network
bench-network: build
	go test -run '^$$' -bench BenchmarkNetwork -benchtime 1x -count 1 -timeout 10m ./test/network

# fuzz runs every fuzz target for FUZZTIME each (make test runs them over
# their seed corpora only).
FUZZTIME ?= 1m
.PHONY: fuzz
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzTokenRole$$' -fuzztime $(FUZZTIME) ./pkg/ca
	for f in FuzzValidateSpec FuzzValidateSpecProto FuzzPlacementConstraint FuzzValidateNodeUpdate FuzzValidateMode FuzzValidateUpdateConfig; do \
		$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) ./pkg/controlapi || exit 1; \
	done
	$(GO) test -run '^$$' -fuzz '^FuzzUnpack$$' -fuzztime $(FUZZTIME) ./pkg/runtime
