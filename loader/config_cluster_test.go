package loader

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestClusterBlock(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plugins.hcl")
	tests := []struct {
		name, src string
		want      ClusterConfig
		err       string
	}{
		{name: "absent", src: ``},
		{name: "tls and user", src: `cluster {
  tls_cert = "c.pem"
  tls_key = "k.pem"
  tls_ca = "/etc/ca.pem"
  user = "realm"
  password_file = "pw"
}`, want: ClusterConfig{TLSCert: filepath.Join(dir, "c.pem"), TLSKey: filepath.Join(dir, "k.pem"), TLSCA: "/etc/ca.pem", User: "realm", PasswordFile: filepath.Join(dir, "pw")}},
		{name: "token", src: `cluster {
  token_file = "tok"
  allow_insecure = true
}`, want: ClusterConfig{TokenFile: filepath.Join(dir, "tok"), AllowInsecure: true}},
		{name: "cert without key", src: `cluster { tls_cert = "c.pem" }`, err: "tls_cert and tls_key go together"},
		{name: "user without password", src: `cluster { user = "u" }`, err: "user and password_file go together"},
		{name: "both credentials", src: `cluster {
  user = "u"
  password_file = "p"
  token_file = "t"
}`, err: "not both"},
		{name: "unknown attribute", src: `cluster { password = "x" }`, err: "password"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(tc.src), file)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Cluster != tc.want {
				t.Errorf("got %+v, want %+v", cfg.Cluster, tc.want)
			}
		})
	}
}
