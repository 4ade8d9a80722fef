package loader

import (
	"github.com/hashicorp/hcl/v2"
)

// ClusterConfig is the cluster block: TLS and credentials of the NATS
// connections between front ends and workers. Without them NATS is
// allowed on loopback addresses only (unless AllowInsecure).
type ClusterConfig struct {
	// TLSCert and TLSKey are this node's certificate and key (PEM);
	// TLSCA verifies the peers'. Absolute paths, or "".
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	TLSCA   string `json:"tls_ca,omitempty"`
	// User with the password in PasswordFile, or the token in
	// TokenFile, authenticate clients and routes. Absolute paths, or "".
	User         string `json:"user,omitempty"`
	PasswordFile string `json:"password_file,omitempty"`
	TokenFile    string `json:"token_file,omitempty"`
	// AllowInsecure permits non-loopback addresses without TLS and
	// credentials.
	AllowInsecure bool `json:"allow_insecure,omitempty"`
}

type rawCluster struct {
	DefRange      hcl.Range `hcl:",def_range"`
	TLSCert       *string   `hcl:"tls_cert,optional"`
	TLSKey        *string   `hcl:"tls_key,optional"`
	TLSCA         *string   `hcl:"tls_ca,optional"`
	User          *string   `hcl:"user,optional"`
	PasswordFile  *string   `hcl:"password_file,optional"`
	TokenFile     *string   `hcl:"token_file,optional"`
	AllowInsecure *bool     `hcl:"allow_insecure,optional"`
}

func (rc *rawCluster) validate(dir string, c *ClusterConfig) hcl.Diagnostics {
	var diags hcl.Diagnostics
	path := func(p *string) string {
		if p == nil || *p == "" {
			return ""
		}
		return resolvePath(dir, *p)
	}
	c.TLSCert, c.TLSKey, c.TLSCA = path(rc.TLSCert), path(rc.TLSKey), path(rc.TLSCA)
	c.PasswordFile, c.TokenFile = path(rc.PasswordFile), path(rc.TokenFile)
	if rc.User != nil {
		c.User = *rc.User
	}
	if rc.AllowInsecure != nil {
		c.AllowInsecure = *rc.AllowInsecure
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		diags = append(diags, diag(rc.DefRange, "Invalid cluster block", "tls_cert and tls_key go together"))
	}
	if (c.User == "") != (c.PasswordFile == "") {
		diags = append(diags, diag(rc.DefRange, "Invalid cluster block", "user and password_file go together"))
	}
	if c.User != "" && c.TokenFile != "" {
		diags = append(diags, diag(rc.DefRange, "Invalid cluster block", "use user/password_file or token_file, not both"))
	}
	return diags
}
