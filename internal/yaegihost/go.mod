// The in-process Yaegi tests are a module of their own so that the plugin's go.mod requires
// neither yaegi nor traefik: the Traefik Plugin Catalog refuses a plugin whose go.mod does.
module github.com/key-ip-sentinel/sentinel/internal/yaegihost

go 1.26.0

require (
	github.com/go-viper/mapstructure/v2 v2.5.0
	github.com/key-ip-sentinel/sentinel v0.0.0
	github.com/redis/go-redis/v9 v9.23.0
	github.com/traefik/yaegi v0.16.1
	golang.org/x/mod v0.42.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/pgx/v5 v5.12.0 // indirect
	github.com/kr/text v0.2.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/text v0.44.0 // indirect
)

replace github.com/key-ip-sentinel/sentinel => ../..
