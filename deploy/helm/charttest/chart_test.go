// Package charttest renders deploy/helm/realm with the Helm library and
// decodes every manifest into its Kubernetes API type (strictly: an
// unknown field fails). It is a module of its own so that Helm and the
// Kubernetes API types stay out of Realm's dependencies; run it with
// `cd deploy/helm/charttest && go test ./...` (make helm-test).
package charttest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	realmloader "github.com/realmrt/realm/loader"
)

// render renders the chart with values and returns its manifests by
// template file.
func render(t *testing.T, values map[string]any) (map[string]string, error) {
	t.Helper()
	ch, err := loader.LoadDir("../realm")
	if err != nil {
		t.Fatal(err)
	}
	vals, err := util.ToRenderValues(ch, values, common.ReleaseOptions{Name: "r1", Namespace: "ai", IsInstall: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return engine.Render(ch, vals)
}

// objects decodes every manifest into its API type.
type objects struct {
	configMaps   []corev1.ConfigMap
	services     []corev1.Service
	statefulSets []appsv1.StatefulSet
	deployments  []appsv1.Deployment
	hpas         []autoscalingv2.HorizontalPodAutoscaler
}

func decode(t *testing.T, files map[string]string) *objects {
	t.Helper()
	o := &objects{}
	for name, text := range files {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for i, doc := range strings.Split(text, "\n---") {
			var head struct{ APIVersion, Kind string }
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s #%d: %v\n%s", name, i, err, doc)
			}
			if head.Kind == "" {
				continue // only comments
			}
			var err error
			switch head.APIVersion + " " + head.Kind {
			case "v1 ConfigMap":
				var v corev1.ConfigMap
				err = yaml.UnmarshalStrict([]byte(doc), &v)
				o.configMaps = append(o.configMaps, v)
			case "v1 Service":
				var v corev1.Service
				err = yaml.UnmarshalStrict([]byte(doc), &v)
				o.services = append(o.services, v)
			case "apps/v1 StatefulSet":
				var v appsv1.StatefulSet
				err = yaml.UnmarshalStrict([]byte(doc), &v)
				o.statefulSets = append(o.statefulSets, v)
			case "apps/v1 Deployment":
				var v appsv1.Deployment
				err = yaml.UnmarshalStrict([]byte(doc), &v)
				o.deployments = append(o.deployments, v)
			case "autoscaling/v2 HorizontalPodAutoscaler":
				var v autoscalingv2.HorizontalPodAutoscaler
				err = yaml.UnmarshalStrict([]byte(doc), &v)
				o.hpas = append(o.hpas, v)
			default:
				t.Fatalf("%s #%d: unexpected %s %s", name, i, head.APIVersion, head.Kind)
			}
			if err != nil {
				t.Fatalf("%s #%d (%s): %v\n%s", name, i, head.Kind, err, doc)
			}
		}
	}
	return o
}

func TestChart(t *testing.T) {
	files, err := render(t, map[string]any{"security": map[string]any{"existingSecret": "realm-tls"},
		"worker": map[string]any{"models": map[string]any{"existingClaim": "models"}}})
	if err != nil {
		t.Fatal(err)
	}
	o := decode(t, files)
	if len(o.configMaps) != 1 || len(o.services) != 2 || len(o.statefulSets) != 1 || len(o.deployments) != 1 || len(o.hpas) != 1 {
		t.Fatalf("got %d configmaps, %d services, %d statefulsets, %d deployments, %d hpas; want 1, 2, 1, 1, 1",
			len(o.configMaps), len(o.services), len(o.statefulSets), len(o.deployments), len(o.hpas))
	}

	// The generated plugins.hcl is one Realm accepts, TLS and credentials included.
	cfg, err := realmloader.ParseConfig([]byte(o.configMaps[0].Data["plugins.hcl"]), "/etc/realm/plugins.hcl")
	if err != nil {
		t.Fatalf("plugins.hcl: %v\n%s", err, o.configMaps[0].Data["plugins.hcl"])
	}
	if cfg.Cluster.TLSCert == "" || cfg.Cluster.User == "" || cfg.Cluster.PasswordFile == "" || cfg.Cluster.AllowInsecure || cfg.ModelsDir != "/models" {
		t.Errorf("plugins.hcl: cluster %+v, models_dir %s", cfg.Cluster, cfg.ModelsDir)
	}

	var headless *corev1.Service
	for i := range o.services {
		if o.services[i].Spec.ClusterIP == "None" {
			headless = &o.services[i]
		}
	}
	if headless == nil || !headless.Spec.PublishNotReadyAddresses {
		t.Fatal("no headless Service publishing not-ready front ends")
	}
	fe := o.statefulSets[0]
	if fe.Spec.ServiceName != headless.Name || *fe.Spec.Replicas != 3 {
		t.Errorf("front ends: serviceName %q replicas %d, want %q and 3", fe.Spec.ServiceName, *fe.Spec.Replicas, headless.Name)
	}
	fc := fe.Spec.Template.Spec.Containers[0]
	var routes string
	for _, a := range fc.Args {
		if r, ok := strings.CutPrefix(a, "--routes="); ok {
			routes = r
		}
	}
	for i := range 3 {
		want := fmt.Sprintf("nats://%s-%d.%s.ai.svc:6222", fe.Name, i, headless.Name)
		if !strings.Contains(routes, want) {
			t.Errorf("routes %q lack %s", routes, want)
		}
	}
	if !slices.Contains(fc.Args, "--cluster") || fc.ReadinessProbe == nil || fc.ReadinessProbe.HTTPGet.Path != "/health" {
		t.Errorf("front end container: args %v, readiness %+v", fc.Args, fc.ReadinessProbe)
	}

	w := o.deployments[0]
	wc := w.Spec.Template.Spec.Containers[0]
	if wc.Args[0] != "worker" || !slices.Contains(wc.Args, "--join=nats://"+headless.Name+".ai.svc:4222") {
		t.Errorf("worker args %v", wc.Args)
	}
	if wc.ReadinessProbe == nil || wc.ReadinessProbe.HTTPGet.Path != "/health" {
		t.Errorf("worker readiness %+v", wc.ReadinessProbe)
	}
	models := false
	for _, v := range w.Spec.Template.Spec.Volumes {
		if v.Name == "models" && v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "models" {
			models = true
		}
	}
	mounted := slices.ContainsFunc(wc.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "models" && m.MountPath == "/models" })
	if !models || !mounted {
		t.Errorf("worker: models claim %v, mounted at /models %v", models, mounted)
	}
	h := o.hpas[0]
	if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != w.Name ||
		len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].External == nil || h.Spec.Metrics[0].External.Metric.Name != "realm_cluster_queue_depth" {
		t.Errorf("hpa: %+v", h.Spec)
	}
	if w.Spec.Replicas != nil {
		t.Errorf("worker replicas set (%d) while the HPA owns them", *w.Spec.Replicas)
	}
}

func TestChartRefusesInsecureByDefault(t *testing.T) {
	_, err := render(t, nil)
	if err == nil || !strings.Contains(err.Error(), "security.existingSecret") {
		t.Fatalf("default values rendered (err %v); want a refusal naming security.existingSecret", err)
	}
	files, err := render(t, map[string]any{"security": map[string]any{"allowInsecure": true}, "worker": map[string]any{"hpa": map[string]any{"enabled": false}}})
	if err != nil {
		t.Fatal(err)
	}
	o := decode(t, files)
	cfg, err := realmloader.ParseConfig([]byte(o.configMaps[0].Data["plugins.hcl"]), "/etc/realm/plugins.hcl")
	if err != nil || !cfg.Cluster.AllowInsecure {
		t.Errorf("allowInsecure: %v %+v", err, cfg)
	}
	if len(o.hpas) != 0 || *o.deployments[0].Spec.Replicas != 2 {
		t.Errorf("hpa disabled: %d hpas, worker replicas %v", len(o.hpas), o.deployments[0].Spec.Replicas)
	}
}
