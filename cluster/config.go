package cluster

import (
	"fmt"
	"os"
	"strings"

	"github.com/realmrt/realm/loader"
)

// SecurityFrom reads the cluster block's secrets.
func SecurityFrom(c loader.ClusterConfig) (Security, error) {
	s := Security{CertFile: c.TLSCert, KeyFile: c.TLSKey, CAFile: c.TLSCA, User: c.User, AllowInsecure: c.AllowInsecure}
	read := func(path string) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("cluster: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("cluster: %s is empty", path)
		}
		return v, nil
	}
	var err error
	if c.PasswordFile != "" {
		if s.Password, err = read(c.PasswordFile); err != nil {
			return Security{}, err
		}
	}
	if c.TokenFile != "" {
		if s.Token, err = read(c.TokenFile); err != nil {
			return Security{}, err
		}
	}
	return s, nil
}
