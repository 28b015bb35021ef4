module github.com/siphon-lab/siphon/cmd/siphond

go 1.26.0

require (
	github.com/emiago/sipgo v1.7.3
	github.com/gobwas/ws v1.3.2
	github.com/icholy/digest v1.2.0
	github.com/jonboulle/clockwork v0.5.0
	github.com/nats-io/nats.go v1.55.0
	github.com/prometheus/client_golang v1.25.0
	github.com/siphon-lab/siphon/pkg v0.0.0
	github.com/siphon-lab/siphon/services/b2bua v0.0.0
	github.com/siphon-lab/siphon/services/edge v0.0.0
	github.com/siphon-lab/siphon/services/events v0.0.0
	github.com/siphon-lab/siphon/services/proxy v0.0.0
	github.com/siphon-lab/siphon/services/registrar v0.0.0
	github.com/siphon-lab/siphon/services/uas v0.0.0
)

require (
	github.com/antithesishq/antithesis-sdk-go v0.8.0-default-no-op // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/gobwas/pool v0.2.1 // indirect
	github.com/google/go-tpm v0.9.8 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/miekg/dns v1.1.73 // indirect
	github.com/minio/highwayhash v1.0.4 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/nats-io/jwt/v2 v2.8.2 // indirect
	github.com/nats-io/nats-server/v2 v2.15.2 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	github.com/pion/randutil v0.1.0 // indirect
	github.com/pion/sdp/v3 v3.0.20 // indirect
	github.com/prometheus/client_model v0.6.3 // indirect
	github.com/prometheus/common v0.72.0 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	github.com/redis/go-redis/v9 v9.23.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sync v0.22.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/time v0.16.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace (
	github.com/siphon-lab/siphon/pkg => ../../pkg
	github.com/siphon-lab/siphon/services/b2bua => ../../services/b2bua
	github.com/siphon-lab/siphon/services/edge => ../../services/edge
	github.com/siphon-lab/siphon/services/events => ../../services/events
	github.com/siphon-lab/siphon/services/proxy => ../../services/proxy
	github.com/siphon-lab/siphon/services/registrar => ../../services/registrar
	github.com/siphon-lab/siphon/services/uas => ../../services/uas
)
