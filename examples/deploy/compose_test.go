package deploy

import (
	"context"
	"encoding/xml"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

var composeFiles = []string{"docker-compose.yml", "docker-compose.cluster.yml"}

const testToken = "a-token-of-the-test"

// project loads a compose file as `docker compose` would, with env as the only
// environment (no .env file, nothing of the test process's).
func project(t *testing.T, file string, env map[string]string) (*types.Project, error) {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(abs, file)},
		cli.WithWorkingDirectory(abs), cli.WithName("rung"), cli.WithEnv(kv))
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

func mustProject(t *testing.T, file string) *types.Project {
	t.Helper()
	p, err := project(t, file, map[string]string{"RUNG_API_TOKEN": testToken})
	if err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	return p
}

// rungService is a service of a compose file that runs the repository's image, with
// the configuration its command line resolves to.
type rungService struct {
	name string
	svc  types.ServiceConfig
	args []string       // after the entrypoint
	cfg  map[string]any // what rung --dry-run prints
}

// rungServices returns the services built from the repository's Dockerfile, each
// command checked with `rung ... --dry-run` under the service's environment and the
// image's.
func rungServices(t *testing.T, p *types.Project) []rungService {
	t.Helper()
	image := dockerfile(t)[1]
	imageEnv := map[string]string{}
	for _, e := range image.all("ENV") {
		k, v, _ := strings.Cut(e, "=")
		imageEnv[k] = v
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	var out []rungService
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		svc := p.Services[name]
		if svc.Build == nil {
			continue
		}
		if svc.Build.Context != abs || (svc.Build.Dockerfile != "" && svc.Build.Dockerfile != "Dockerfile") {
			t.Errorf("service %s builds %s/%s: want the repository's Dockerfile", name, svc.Build.Context, svc.Build.Dockerfile)
			continue
		}
		if len(svc.Entrypoint) > 0 {
			t.Errorf("service %s replaces the image's entrypoint with %q", name, svc.Entrypoint)
			continue
		}
		env := maps.Clone(imageEnv)
		for k, v := range svc.Environment {
			if v == nil {
				t.Errorf("service %s: %s has no value", name, k)
				continue
			}
			env[k] = *v
		}
		args := []string(svc.Command)
		out = append(out, rungService{name: name, svc: svc, args: args, cfg: dryRun(t, args, env)})
	}
	if len(out) == 0 {
		t.Fatalf("%s runs no rung", p.ComposeFiles)
	}
	return out
}

// Both files load with the compose specification's own library, and every rung
// command line in them is one rung accepts (`rung ... --dry-run`), doing a job that
// runs beside the others: serve or aggregate. A relay would need an outbox some
// service writes, and no service here runs a business app.
func TestComposeCommands(t *testing.T) {
	for _, file := range composeFiles {
		t.Run(file, func(t *testing.T) {
			for _, s := range rungServices(t, mustProject(t, file)) {
				if sub := s.args[0]; sub != "serve" && sub != "aggregate" {
					t.Errorf("service %s runs rung %s: want serve or aggregate", s.name, sub)
				}
			}
		})
	}
}

// The private surfaces need a token, and a compose file does not start without one.
func TestComposeTokenRequired(t *testing.T) {
	for _, file := range composeFiles {
		t.Run(file, func(t *testing.T) {
			if _, err := project(t, file, nil); err == nil || !strings.Contains(err.Error(), "RUNG_API_TOKEN") {
				t.Errorf("load without RUNG_API_TOKEN: %v, want an error naming it", err)
			}
			for _, s := range rungServices(t, mustProject(t, file)) {
				if s.args[0] != "serve" {
					continue
				}
				if v := s.svc.Environment["RUNG_API_TOKEN"]; v == nil || *v != testToken {
					t.Errorf("service %s does not get RUNG_API_TOKEN", s.name)
				}
			}
		})
	}
}

// Only public listeners are published: serve's --listen. Its admin listener (the
// dashboard, stats, /metrics, attribution, quarantine) and aggregate's (/metrics) stay
// on the compose network.
func TestComposeAdminNotPublished(t *testing.T) {
	for _, file := range composeFiles {
		t.Run(file, func(t *testing.T) {
			for _, s := range rungServices(t, mustProject(t, file)) {
				published := map[uint32]bool{}
				for _, p := range s.svc.Ports {
					published[p.Target] = true
				}
				public, private := "", ""
				switch s.args[0] {
				case "serve":
					public, private = str(s.cfg["listen"]), str(s.cfg["admin_listen"])
					if private == "" {
						t.Errorf("service %s serves its private surfaces on its public listener %s", s.name, public)
						continue
					}
				case "aggregate":
					private = str(s.cfg["listen"])
				}
				if port(t, private) != 0 && published[port(t, private)] {
					t.Errorf("service %s publishes its admin listener %s", s.name, private)
				}
				for target := range published {
					if public == "" || target != port(t, public) {
						t.Errorf("service %s publishes port %d, which is not its public listener (%q)", s.name, target, public)
					}
				}
			}
		})
	}
}

// Every service that is not rung is there for rung: a host one of rung's RUNG_* URLs
// names, or a shard of the ClickHouse cluster rung writes to.
func TestComposeEveryServiceHasAJob(t *testing.T) {
	for _, file := range composeFiles {
		t.Run(file, func(t *testing.T) {
			p := mustProject(t, file)
			used := map[string]bool{}
			for _, s := range rungServices(t, p) {
				for k, v := range s.svc.Environment {
					if !strings.HasPrefix(k, "RUNG_") || v == nil {
						continue
					}
					for _, part := range strings.Split(*v, ",") {
						if u, err := url.Parse(part); err == nil && u.Host != "" {
							used[u.Hostname()] = true
						}
					}
				}
			}
			for _, svc := range p.Services {
				for _, h := range clusterHosts(t, svc) {
					used[h] = true
				}
			}
			for name, svc := range p.Services {
				if svc.Build == nil && !used[name] {
					t.Errorf("service %s (%s): nothing rung runs uses it", name, svc.Image)
				}
			}
		})
	}
}

// The cluster profile mounts into every ClickHouse node the users.d files that make
// rung's IN subqueries shard-local (without them rung refuses to start), and the
// cluster rung is told to shard over names services of the file.
func TestComposeClusterProfile(t *testing.T) {
	p := mustProject(t, "docker-compose.cluster.yml")
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	profiles, err := filepath.Glob(filepath.Join(abs, "examples/cluster/users.d/*.xml"))
	if err != nil || len(profiles) == 0 {
		t.Fatalf("no examples/cluster/users.d/*.xml: %v", err)
	}
	for _, f := range profiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Mode string `xml:"profiles>default>distributed_product_mode"`
		}
		if err := xml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if doc.Mode != "local" {
			t.Errorf("%s sets distributed_product_mode %q for the default profile, want local", f, doc.Mode)
		}
	}
	nodes := 0
	for name, svc := range p.Services {
		if !strings.HasPrefix(svc.Image, "clickhouse/clickhouse-server") {
			continue
		}
		nodes++
		for _, f := range profiles {
			want := "/etc/clickhouse-server/users.d/" + filepath.Base(f)
			if !slices.ContainsFunc(svc.Volumes, func(v types.ServiceVolumeConfig) bool {
				return v.Type == types.VolumeTypeBind && v.Source == f && v.Target == want && v.ReadOnly
			}) {
				t.Errorf("service %s does not mount %s read-only at %s", name, f, want)
			}
		}
	}
	if nodes < 2 {
		t.Errorf("the cluster has %d ClickHouse nodes, want at least 2", nodes)
	}
	for _, s := range rungServices(t, p) {
		cluster := str(s.cfg["clickhouse_cluster"])
		if cluster == "" {
			t.Errorf("service %s does not shard over the cluster", s.name)
			continue
		}
		for name, svc := range p.Services {
			hosts := clusterHostsOf(t, svc, cluster)
			if len(hosts) == 0 && strings.HasPrefix(svc.Image, "clickhouse/clickhouse-server") {
				t.Errorf("ClickHouse node %s has no cluster %q", name, cluster)
			}
			for _, h := range hosts {
				if _, ok := p.Services[h]; !ok {
					t.Errorf("cluster %q of %s names %s, not a service of the file", cluster, name, h)
				}
			}
		}
	}
}

// clusterHosts returns the hosts of every cluster in the remote_servers files a service
// mounts into ClickHouse's config.d.
func clusterHosts(t *testing.T, svc types.ServiceConfig) []string { return clusterHostsOf(t, svc, "") }

// clusterHostsOf returns the hosts of the named cluster (every cluster when name is
// empty) in the config.d files svc mounts.
func clusterHostsOf(t *testing.T, svc types.ServiceConfig, name string) []string {
	t.Helper()
	var hosts []string
	for _, v := range svc.Volumes {
		if v.Type != types.VolumeTypeBind || !strings.HasPrefix(v.Target, "/etc/clickhouse-server/config.d/") {
			continue
		}
		b, err := os.ReadFile(v.Source)
		if err != nil {
			t.Fatalf("mount %s: %v", v.Source, err)
		}
		var doc struct {
			RemoteServers struct {
				Clusters []struct {
					XMLName xml.Name
					Hosts   []string `xml:"shard>replica>host"`
				} `xml:",any"`
			} `xml:"remote_servers"`
		}
		if err := xml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", v.Source, err)
		}
		for _, c := range doc.RemoteServers.Clusters {
			if name == "" || c.XMLName.Local == name {
				hosts = append(hosts, c.Hosts...)
			}
		}
	}
	return hosts
}

func port(t *testing.T, addr string) uint32 {
	t.Helper()
	if addr == "" {
		return 0
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return uint32(n)
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
