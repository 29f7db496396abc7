// Package helm_test renders the Helm chart infra/helm/decision-fabric with Helm's own Go
// packages for every values file under its ci/ folder, decodes every manifest strictly
// into the Kubernetes API types, checks how the objects fit together, loads every
// rendered fabric config with internal/config's strict loader, and runs helm lint.
package helm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/decision-fabric/fabric/internal/app"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/federation"
)

const (
	chartDir  = "decision-fabric"
	release   = "df"
	namespace = "fabric"
)

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor the chart
// writes; unknown fields are errors.
type serviceMonitor struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// rendered is one release's objects by kind.
type rendered struct {
	deployments     map[string]*appsv1.Deployment
	services        map[string]*corev1.Service
	configMaps      map[string]*corev1.ConfigMap
	pdbs            []*policyv1.PodDisruptionBudget
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	netpols         []*networkingv1.NetworkPolicy
	serviceMonitors []*serviceMonitor
}

func ciValuesFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 3, "ci/ holds the all-in-one, split and regions values")
	return files
}

// render renders the chart with vals as `helm install --dry-run` would (schema, release
// values, default capabilities) and returns the manifests by template.
func render(t *testing.T, vals map[string]any) (map[string]string, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	require.NoError(t, err)
	rv, err := util.ToRenderValues(chrt, vals, common.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true}, nil)
	if err != nil {
		return nil, err
	}
	return engine.Render(chrt, rv)
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decode splits the manifests and decodes each object strictly into its API type.
func decode(t *testing.T, manifests map[string]string) *rendered {
	t.Helper()
	r := &rendered{
		deployments: map[string]*appsv1.Deployment{},
		services:    map[string]*corev1.Service{},
		configMaps:  map[string]*corev1.ConfigMap{},
	}
	names := make([]string, 0, len(manifests))
	for name := range manifests {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !strings.HasSuffix(name, ".yaml") {
			continue // NOTES.txt, _helpers.tpl
		}
		for _, doc := range docSep.Split(manifests[name], -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			require.NoError(t, yaml.Unmarshal([]byte(doc), &meta), "%s", name)
			strict := func(v any) {
				t.Helper()
				require.NoError(t, yaml.UnmarshalStrict([]byte(doc), v), "%s: %s %s:\n%s", name, meta.APIVersion, meta.Kind, doc)
			}
			switch meta.APIVersion + " " + meta.Kind {
			case "apps/v1 Deployment":
				var o appsv1.Deployment
				strict(&o)
				require.NotContains(t, r.deployments, o.Name, "duplicate Deployment")
				r.deployments[o.Name] = &o
			case "v1 Service":
				var o corev1.Service
				strict(&o)
				require.NotContains(t, r.services, o.Name, "duplicate Service")
				r.services[o.Name] = &o
			case "v1 ConfigMap":
				var o corev1.ConfigMap
				strict(&o)
				require.NotContains(t, r.configMaps, o.Name, "duplicate ConfigMap")
				r.configMaps[o.Name] = &o
			case "policy/v1 PodDisruptionBudget":
				var o policyv1.PodDisruptionBudget
				strict(&o)
				r.pdbs = append(r.pdbs, &o)
			case "autoscaling/v2 HorizontalPodAutoscaler":
				var o autoscalingv2.HorizontalPodAutoscaler
				strict(&o)
				r.hpas = append(r.hpas, &o)
			case "networking.k8s.io/v1 NetworkPolicy":
				var o networkingv1.NetworkPolicy
				strict(&o)
				r.netpols = append(r.netpols, &o)
			case "monitoring.coreos.com/v1 ServiceMonitor":
				var o serviceMonitor
				js, err := yaml.YAMLToJSON([]byte(doc))
				require.NoError(t, err)
				dec := json.NewDecoder(bytes.NewReader(js))
				dec.DisallowUnknownFields()
				require.NoError(t, dec.Decode(&o), "%s: ServiceMonitor", name)
				r.serviceMonitors = append(r.serviceMonitors, &o)
			case "v1 Secret":
				t.Fatalf("%s: the chart renders a Secret; it must only reference existing ones", name)
			default:
				t.Fatalf("%s: unexpected object %s %s", name, meta.APIVersion, meta.Kind)
			}
		}
	}
	return r
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// selected returns the Deployments whose pods selector picks.
func (r *rendered) selected(selector map[string]string) []*appsv1.Deployment {
	var out []*appsv1.Deployment
	for _, d := range r.deployments {
		if selects(selector, d.Spec.Template.Labels) {
			out = append(out, d)
		}
	}
	return out
}

func TestChartRendersForEveryCIValuesFile(t *testing.T) {
	for _, file := range ciValuesFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			vals, err := common.ReadValuesFile(file)
			require.NoError(t, err)
			manifests, err := render(t, vals)
			require.NoError(t, err)
			r := decode(t, manifests)
			checkRelease(t, r, vals)
		})
	}
}

func checkRelease(t *testing.T, r *rendered, vals map[string]any) {
	t.Helper()
	mode, _ := vals["mode"].(string)
	regions := 0
	if reg, ok := vals["regions"].(map[string]any); ok && reg["enabled"] == true {
		regions = len(reg["list"].([]any))
	}
	want := 1
	if mode == "split" {
		want = len(fabric.Services)
	}
	require.Len(t, r.deployments, want+regions, "Deployments")

	targets := map[string]int{}
	for name, d := range r.deployments {
		checkDeployment(t, r, d)
		cfg := loadConfig(t, r, d)
		targets[cfg.Target]++
		if cfg.Federation.Region.Name != "" {
			require.Equal(t, name, release+"-decision-fabric-region-"+cfg.Federation.Region.Name)
			// A region keeps its own store: never the release's POSTGRES_DSN.
			for _, e := range d.Spec.Template.Spec.Containers[0].Env {
				if e.Name == "POSTGRES_DSN" {
					require.NotEqual(t, releasePostgres(vals), e.ValueFrom.SecretKeyRef.Name, "region %s shares the release's database", name)
				}
			}
		}
		if cfg.Federation.Enabled {
			checkRegistry(t, r, d, cfg)
		}
	}
	if mode == "split" {
		for _, s := range fabric.Services {
			n := 1
			if s.Name == fabric.Negotiator {
				n += regions
			}
			require.Equal(t, n, targets[s.Name], "Deployments of %s", s.Name)
		}
	} else {
		require.Equal(t, 1, targets["all"])
		require.Equal(t, regions, targets[fabric.Negotiator])
	}

	for _, s := range r.services {
		ds := r.selected(s.Spec.Selector)
		require.Len(t, ds, 1, "Service %s selects exactly one Deployment", s.Name)
		ports := containerPorts(ds[0])
		for _, p := range s.Spec.Ports {
			cp, ok := ports[p.TargetPort.String()]
			require.True(t, ok, "Service %s port %s: no container port named %s", s.Name, p.Name, p.TargetPort.String())
			require.Equal(t, p.Port, cp, "Service %s port %s", s.Name, p.Name)
			require.LessOrEqual(t, len(p.Name), 15, "port name %q", p.Name)
		}
	}
	require.Len(t, r.services, len(r.deployments), "one Service per Deployment")

	for _, p := range r.pdbs {
		require.Len(t, r.selected(p.Spec.Selector.MatchLabels), 1, "PDB %s", p.Name)
		require.Empty(t, p.Spec.Selector.MatchExpressions)
	}
	require.Len(t, r.pdbs, len(r.deployments), "one PDB per Deployment")

	for _, h := range r.hpas {
		require.Equal(t, "Deployment", h.Spec.ScaleTargetRef.Kind)
		require.Equal(t, "apps/v1", h.Spec.ScaleTargetRef.APIVersion)
		d, ok := r.deployments[h.Spec.ScaleTargetRef.Name]
		require.True(t, ok, "HPA %s targets a missing Deployment %s", h.Name, h.Spec.ScaleTargetRef.Name)
		require.Nil(t, d.Spec.Replicas, "Deployment %s: replicas are the HPA's", d.Name)
		require.NotNil(t, h.Spec.MinReplicas)
		require.GreaterOrEqual(t, h.Spec.MaxReplicas, *h.Spec.MinReplicas)
	}
	for _, d := range r.deployments {
		if d.Spec.Replicas == nil {
			require.True(t, slices.ContainsFunc(r.hpas, func(h *autoscalingv2.HorizontalPodAutoscaler) bool { return h.Spec.ScaleTargetRef.Name == d.Name }), "Deployment %s: no replicas and no HPA", d.Name)
		}
	}

	require.Len(t, r.netpols, len(r.deployments), "one NetworkPolicy per Deployment")
	for _, np := range r.netpols {
		ds := r.selected(np.Spec.PodSelector.MatchLabels)
		require.Len(t, ds, 1, "NetworkPolicy %s", np.Name)
		require.Equal(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, np.Spec.PolicyTypes)
		gateway := map[int32]bool{}
		for _, s := range fabric.Services {
			gateway[int32(s.Ports.HTTP)] = true
		}
		covered := map[int32]bool{}
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				port := p.Port.IntVal
				covered[port] = true
				if gateway[port] {
					continue
				}
				// Not a gateway port: only from peers named, never from anywhere.
				require.NotEmpty(t, rule.From, "NetworkPolicy %s opens port %d to every source", np.Name, port)
				for _, peer := range rule.From {
					if peer.IPBlock != nil {
						require.Equal(t, int32(9403), port, "NetworkPolicy %s: an ipBlock only on the region port", np.Name)
						continue
					}
					require.NotNil(t, peer.PodSelector, "NetworkPolicy %s port %d", np.Name, port)
					require.Nil(t, peer.NamespaceSelector, "NetworkPolicy %s port %d: the release's namespace only", np.Name, port)
					require.Equal(t, release, peer.PodSelector.MatchLabels["app.kubernetes.io/instance"])
				}
			}
		}
		for _, cp := range ds[0].Spec.Template.Spec.Containers[0].Ports {
			require.True(t, covered[cp.ContainerPort], "NetworkPolicy %s: port %d not admitted", np.Name, cp.ContainerPort)
		}
	}

	if sm, ok := vals["serviceMonitor"].(map[string]any); ok && sm["enabled"] == true {
		require.Len(t, r.serviceMonitors, 1)
		m := r.serviceMonitors[0]
		require.NotEmpty(t, m.Spec.Endpoints)
		scraped := 0
		for _, s := range r.services {
			if !selects(m.Spec.Selector.MatchLabels, s.Labels) {
				continue
			}
			for _, p := range s.Spec.Ports {
				if p.Name == m.Spec.Endpoints[0].Port {
					scraped++
				}
			}
		}
		require.Equal(t, len(r.services), scraped, "every Service's REST port is scraped")
		require.Equal(t, "/metrics", m.Spec.Endpoints[0].Path)
	} else {
		require.Empty(t, r.serviceMonitors)
	}
}

// releasePostgres is secrets.postgres.existingSecret of vals.
func releasePostgres(vals map[string]any) string {
	sec, _ := vals["secrets"].(map[string]any)
	pg, _ := sec["postgres"].(map[string]any)
	name, _ := pg["existingSecret"].(string)
	return name
}

func containerPorts(d *appsv1.Deployment) map[string]int32 {
	out := map[string]int32{}
	for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
		out[p.Name] = p.ContainerPort
	}
	return out
}

func checkDeployment(t *testing.T, r *rendered, d *appsv1.Deployment) {
	t.Helper()
	require.True(t, selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels), "Deployment %s: selector does not pick its pods", d.Name)
	require.Len(t, r.selected(d.Spec.Selector.MatchLabels), 1, "Deployment %s: selector overlaps another Deployment's pods", d.Name)
	pod := d.Spec.Template.Spec
	require.NotNil(t, pod.SecurityContext)
	require.True(t, pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot, "Deployment %s: runAsNonRoot", d.Name)
	require.True(t, pod.SecurityContext.RunAsUser != nil && *pod.SecurityContext.RunAsUser != 0, "Deployment %s: runAsUser", d.Name)
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	sc := c.SecurityContext
	require.NotNil(t, sc, "Deployment %s: container securityContext", d.Name)
	require.True(t, sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem, "Deployment %s: read-only root FS", d.Name)
	require.True(t, sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation, "Deployment %s: no privilege escalation", d.Name)
	require.NotNil(t, sc.Capabilities)
	require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, "Deployment %s: drop all capabilities", d.Name)
	require.Empty(t, sc.Capabilities.Add)

	ports := map[int32]bool{}
	for _, p := range c.Ports {
		ports[p.ContainerPort] = true
	}
	for what, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		require.NotNil(t, p, "Deployment %s: %s probe", d.Name, what)
		require.NotNil(t, p.HTTPGet, "Deployment %s: %s probe is an HTTP GET", d.Name, what)
		require.Equal(t, "/health", p.HTTPGet.Path, "Deployment %s: %s probe", d.Name, what)
		require.True(t, ports[p.HTTPGet.Port.IntVal], "Deployment %s: %s probe port %s is no container port", d.Name, what, p.HTTPGet.Port.String())
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		_, ok := c.Resources.Limits[res]
		require.True(t, ok, "Deployment %s: %s limit", d.Name, res)
		_, ok = c.Resources.Requests[res]
		require.True(t, ok, "Deployment %s: %s request", d.Name, res)
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			require.NotNil(t, e.ValueFrom.SecretKeyRef, "Deployment %s env %s", d.Name, e.Name)
			require.NotEmpty(t, e.ValueFrom.SecretKeyRef.Name)
			continue
		}
		require.NotRegexp(t, `(?i)(TOKEN|SECRET|PASSWORD|DSN)`, e.Name, "Deployment %s: env %s holds a literal value", d.Name, e.Name)
	}
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil {
			_, ok := r.configMaps[v.ConfigMap.Name]
			require.True(t, ok, "Deployment %s: volume %s names a missing ConfigMap %s", d.Name, v.Name, v.ConfigMap.Name)
		}
	}
}

// mountFor returns the volume mounted at the folder holding path, or fails.
func mountFor(t *testing.T, d *appsv1.Deployment, path string) corev1.Volume {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	for _, m := range c.VolumeMounts {
		if m.MountPath == filepath.Dir(path) {
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Name == m.Name {
					return v
				}
			}
		}
	}
	t.Fatalf("Deployment %s: nothing mounted at %s (for %s)", d.Name, filepath.Dir(path), path)
	return corev1.Volume{}
}

// loadConfig loads the Deployment's rendered config with the fabric's own strict
// loader and checks that what it names is there: files mounted, environment variables
// set, peers' Services.
// renderedConfig is d's fabric config file as rendered (from its ConfigMap).
func renderedConfig(t *testing.T, r *rendered, d *appsv1.Deployment) string {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	require.GreaterOrEqual(t, len(c.Command), 3)
	require.Equal(t, "-config", c.Command[len(c.Command)-2])
	cfgPath := c.Command[len(c.Command)-1]
	v := mountFor(t, d, cfgPath)
	require.NotNil(t, v.ConfigMap, "Deployment %s: the config comes from a ConfigMap", d.Name)
	raw, ok := r.configMaps[v.ConfigMap.Name].Data[filepath.Base(cfgPath)]
	require.True(t, ok, "ConfigMap %s has no %s", v.ConfigMap.Name, filepath.Base(cfgPath))
	return raw
}

// loadRendered loads raw with the strict loader, reading no variable: the file alone
// must be valid.
func loadRendered(t *testing.T, raw string) (config.Config, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(file, []byte(raw), 0o600))
	return config.LoadTarget(file, func(string) (string, bool) { return "", false }, "", "")
}

func loadConfig(t *testing.T, r *rendered, d *appsv1.Deployment) config.Config {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	raw := renderedConfig(t, r, d)
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = true
	}
	cfg, err := loadRendered(t, raw)
	require.NoError(t, err, "Deployment %s: config:\n%s", d.Name, raw)

	for what, p := range map[string]string{
		"auth.service_key_file":        cfg.Auth.ServiceKeyFile,
		"auth.public_key_file":         cfg.Auth.PublicKeyFile,
		"integrations.cosign_key_path": cfg.Integrations.CosignKeyPath,
		"federation.region.key_file":   cfg.Federation.Region.KeyFile,
		"federation.registry_file":     cfg.Federation.RegistryFile,
	} {
		if p == "" {
			continue
		}
		v := mountFor(t, d, p)
		switch {
		case v.Secret != nil:
			require.True(t, slices.ContainsFunc(v.Secret.Items, func(k corev1.KeyToPath) bool { return k.Path == filepath.Base(p) }), "Deployment %s: %s %s not in its Secret volume", d.Name, what, p)
		case v.ConfigMap != nil:
			require.Contains(t, r.configMaps[v.ConfigMap.Name].Data, filepath.Base(p), "Deployment %s: %s", d.Name, what)
		default:
			t.Fatalf("Deployment %s: %s %s: mounted from neither a Secret nor a ConfigMap", d.Name, what, p)
		}
	}
	for _, name := range []string{cfg.HIL.SMTP.PasswordEnv, cfg.HIL.Slack.TokenEnv, cfg.HIL.Slack.SigningSecretEnv, cfg.HIL.Telegram.TokenEnv, cfg.HIL.Telegram.WebhookSecretEnv} {
		if name != "" {
			require.True(t, env[name], "Deployment %s: the config names %s, which is not set", d.Name, name)
		}
	}
	if cfg.Federation.Enabled || cfg.Federation.Region.Name != "" {
		require.True(t, env["FEDERATION_TOKEN"], "Deployment %s: federation without FEDERATION_TOKEN", d.Name)
	}
	require.Truef(t, strings.HasPrefix(cfg.DataDir, "/"), "data_dir %s", cfg.DataDir)
	require.Equal(t, "data", mountFor(t, d, cfg.DataDir).Name, "Deployment %s: data_dir on the data volume", d.Name)

	// Every service's address: its own listeners are the container's ports, its peers'
	// dials are a rendered Service's gRPC port.
	ports := map[int32]bool{}
	for _, p := range c.Ports {
		ports[p.ContainerPort] = true
	}
	for _, s := range fabric.Services {
		l := cfg.Services[s.Name]
		if cfg.Target == "all" || cfg.Target == s.Name {
			for _, a := range []string{l.HTTPAddr, l.GRPCAddr} {
				require.True(t, ports[port(t, a)], "Deployment %s: %s listens on %s, not a container port", d.Name, s.Name, a)
			}
			continue
		}
		host, p, err := net.SplitHostPort(l.DialAddr())
		require.NoError(t, err)
		svc, ok := r.services[host]
		require.True(t, ok, "Deployment %s: %s dials %s, no such Service", d.Name, s.Name, l.DialAddr())
		require.True(t, slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return strconv.Itoa(int(sp.Port)) == p }), "Deployment %s: %s dials %s", d.Name, s.Name, l.DialAddr())
		require.Equal(t, int(port(t, l.DialAddr())), s.Ports.GRPC)
	}
	if cfg.Federation.Region.Name != "" {
		require.True(t, ports[port(t, cfg.Federation.Region.GRPCAddr)], "Deployment %s: region listener", d.Name)
	}
	return cfg
}

func port(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return int32(n)
}

// checkRegistry parses the coordinating negotiator's registry with the fabric's parser
// and checks each endpoint is a region's Service.
func checkRegistry(t *testing.T, r *rendered, d *appsv1.Deployment, cfg config.Config) {
	t.Helper()
	v := mountFor(t, d, cfg.Federation.RegistryFile)
	raw := r.configMaps[v.ConfigMap.Name].Data[filepath.Base(cfg.Federation.RegistryFile)]
	reg, err := federation.ParseRegistry([]byte(raw))
	require.NoError(t, err, "registry:\n%s", raw)
	require.NotEmpty(t, reg.Regions)
	for _, g := range reg.Regions {
		host, p, err := net.SplitHostPort(g.Endpoint)
		require.NoError(t, err)
		svc, ok := r.services[host]
		require.True(t, ok, "region %s: endpoint %s is no Service", g.Name, g.Endpoint)
		require.True(t, slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return strconv.Itoa(int(sp.Port)) == p && sp.Name == "region" }), "region %s: endpoint %s", g.Name, g.Endpoint)
	}
}

// helm lint reports a broken chart (the check is wired, not vacuous): the chart
// copied with a template that is no YAML.
// The chart mounts no federation.tls, and its regions listen on every interface: with
// simulation_mode "false" a region's config is refused at load (the federation token
// would cross the pod network in cleartext) unless config.federation.allow_insecure,
// which survives the federation settings the chart writes.
func TestChartRegionsOutsideSimulationNeedAllowInsecure(t *testing.T) {
	for _, allow := range []bool{false, true} {
		vals, err := common.ReadValuesFile(filepath.Join(chartDir, "ci", "regions-values.yaml"))
		require.NoError(t, err)
		vals["config"] = map[string]any{"simulation_mode": "false", "federation": map[string]any{"allow_insecure": allow}}
		if tls, ok := vals["regions"].(map[string]any)["tls"].(map[string]any); ok {
			tls["existingSecret"] = "" // this test is about the release without mutual TLS
		}
		manifests, err := render(t, vals)
		require.NoError(t, err)
		r := decode(t, manifests)
		regions := 0
		for name, d := range r.deployments {
			if !strings.Contains(name, "-region-") {
				continue
			}
			regions++
			cfg, err := loadRendered(t, renderedConfig(t, r, d))
			if !allow {
				require.ErrorContains(t, err, "set federation.tls", name)
				continue
			}
			require.NoError(t, err, name)
			require.True(t, cfg.Federation.AllowInsecure, name)
			require.NotEmpty(t, cfg.Federation.Region.Name, name)
		}
		require.Equal(t, 3, regions)
	}
}

// With regions.tls, every federation workload (the regions and the coordinating
// negotiator) mounts the Secret and gets federation.tls: outside simulation it starts
// without allow_insecure, and FEDERATION_TOKEN never crosses the pod network in
// cleartext.
func TestChartRegionsWithMutualTLS(t *testing.T) {
	vals, err := common.ReadValuesFile(filepath.Join(chartDir, "ci", "regions-values.yaml"))
	require.NoError(t, err)
	vals["config"] = map[string]any{"simulation_mode": "false"}
	vals["regions"].(map[string]any)["tls"] = map[string]any{"existingSecret": "federation-mtls", "certKey": "tls.crt", "keyKey": "tls.key", "caKey": "ca.crt"}
	manifests, err := render(t, vals)
	require.NoError(t, err)
	r := decode(t, manifests)
	federated := 0
	for name, d := range r.deployments {
		cfg, err := loadRendered(t, renderedConfig(t, r, d))
		require.NoError(t, err, name)
		if !cfg.Federation.Enabled && cfg.Federation.Region.Name == "" {
			continue
		}
		federated++
		require.False(t, cfg.Federation.AllowInsecure, name)
		require.Equal(t, "/etc/fabric/secrets/federation-tls/tls.crt", cfg.Federation.TLS.CertFile, name)
		require.Equal(t, "/etc/fabric/secrets/federation-tls/tls.key", cfg.Federation.TLS.KeyFile, name)
		require.Equal(t, "/etc/fabric/secrets/federation-tls/ca.crt", cfg.Federation.TLS.CAFile, name)
		mounted := false
		for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
			mounted = mounted || (m.Name == "federation-tls" && m.MountPath == "/etc/fabric/secrets/federation-tls" && m.ReadOnly)
		}
		require.True(t, mounted, "%s mounts the federation TLS Secret", name)
		secret := ""
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == "federation-tls" && v.Secret != nil {
				secret = v.Secret.SecretName
			}
		}
		require.Equal(t, "federation-mtls", secret, name)
	}
	require.Equal(t, 4, federated, "three regions and the coordinating negotiator")
}

func TestHelmLintReportsABrokenChart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "decision-fabric")
	require.NoError(t, os.CopyFS(dir, os.DirFS(chartDir)))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "templates", "broken.yaml"), []byte("kind: [\n"), 0o600))
	res := lint.RunAll(dir, map[string]any{}, namespace)
	var errs []string
	for _, m := range res.Messages {
		if m.Severity == support.ErrorSev {
			errs = append(errs, m.Error())
		}
	}
	require.NotEmpty(t, errs)
	joined := strings.Join(errs, "\n")
	require.Contains(t, joined, "broken.yaml")
}

// The chart refuses values that cannot work, naming what to set.
func TestChartRefusesUnworkableValues(t *testing.T) {
	for name, tc := range map[string]struct {
		vals map[string]any
		want string
	}{
		"unknown mode":           {map[string]any{"mode": "both"}, "want all-in-one or split"},
		"replicas on SQLite":     {map[string]any{"defaults": map[string]any{"replicas": 2}}, "needs secrets.postgres.existingSecret"},
		"autoscaling on SQLite":  {map[string]any{"mode": "split", "services": map[string]any{"sim-canary": map[string]any{"autoscaling": map[string]any{"enabled": true}}}}, "needs secrets.postgres.existingSecret"},
		"regions without token":  {map[string]any{"regions": map[string]any{"enabled": true, "list": []any{map[string]any{"name": "eu", "keySecret": "k", "publicKey": "p"}}}}, "secrets.federationToken.existingSecret"},
		"region without key":     {map[string]any{"secrets": map[string]any{"federationToken": map[string]any{"existingSecret": "t"}}, "regions": map[string]any{"enabled": true, "list": []any{map[string]any{"name": "eu", "publicKey": "p"}}}}, "keySecret is required"},
		"region with a bad name": {map[string]any{"secrets": map[string]any{"federationToken": map[string]any{"existingSecret": "t"}}, "regions": map[string]any{"enabled": true, "list": []any{map[string]any{"name": "EU_West", "keySecret": "k", "publicKey": "p"}}}}, "lower-case DNS label"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := render(t, tc.vals)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// The default values render a working all-in-one release too.
func TestChartDefaults(t *testing.T) {
	manifests, err := render(t, map[string]any{})
	require.NoError(t, err)
	checkRelease(t, decode(t, manifests), map[string]any{})
}

// The all-in-one pod of the default values boots: its rendered config, loaded as the
// pod loads it (simulation, nothing else set), starts all seven services, which answer
// /health. Only the folders and ports are moved to the test's.
func TestRenderedAllInOneConfigBoots(t *testing.T) {
	manifests, err := render(t, map[string]any{})
	require.NoError(t, err)
	r := decode(t, manifests)
	d := r.deployments[release+"-decision-fabric"]
	require.NotNil(t, d)
	cfg := loadConfig(t, r, d)
	require.Equal(t, "all", cfg.Target)
	cfg.SimulationMode = "true"
	cfg.DataDir, cfg.ReportsDir = t.TempDir(), t.TempDir()
	for n, l := range cfg.Services {
		l.HTTPAddr, l.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
		cfg.Services[n] = l
	}
	run, err := app.Start(context.Background(), cfg, io.Discard)
	require.NoError(t, err)
	defer func() { require.NoError(t, run.Stop()) }()
	require.Len(t, run.Servers, len(fabric.Services))
	for name, srv := range run.Servers {
		resp, err := http.Get("http://" + srv.HTTPAddr() + "/health")
		require.NoError(t, err, name)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, name)
	}
}

// No values file holds a secret value: keys, DSNs and passwords come from Secrets.
func TestValuesFilesHoldNoSecrets(t *testing.T) {
	files := append(ciValuesFiles(t), filepath.Join(chartDir, "values.yaml"))
	leak := regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY|(?i)postgres(ql)?://|\b(password|token|secret|dsn)\s*:`)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NotRegexp(t, leak, stripComments(string(raw)), "%s", f)
	}
}

// helm lint (strict: warnings fail) with the default values and every ci/ values file.
func TestHelmLint(t *testing.T) {
	runs := map[string]map[string]any{"values.yaml": {}}
	for _, file := range ciValuesFiles(t) {
		vals, err := common.ReadValuesFile(file)
		require.NoError(t, err)
		runs[filepath.Base(file)] = vals
	}
	for name, vals := range runs {
		t.Run(name, func(t *testing.T) {
			// What `helm lint --strict` runs (pkg/action's Lint): every rule, and a
			// warning fails like an error.
			res := lint.RunAll(chartDir, vals, namespace)
			for _, m := range res.Messages {
				t.Log(m.Error())
				require.Less(t, m.Severity, support.WarningSev, "helm lint: %s", m.Error())
			}
		})
	}
}
