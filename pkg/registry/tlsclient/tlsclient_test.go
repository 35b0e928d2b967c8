package tlsclient

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestTransportRefusesPlainHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request reached the server over plain HTTP: %s %s", r.Method, r.URL)
	}))
	defer srv.Close()
	c := &http.Client{Transport: Transport(&tls.Config{MinVersion: tls.VersionTLS12})}
	resp, err := c.Get(srv.URL + "/v2/")
	if err == nil {
		resp.Body.Close()
		t.Fatal("GET over http:// succeeded, want ErrPlainHTTP")
	}
	if !errors.Is(err, ErrPlainHTTP) {
		t.Errorf("GET over http:// = %v, want ErrPlainHTTP", err)
	}
}
