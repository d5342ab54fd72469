package main

import (
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func TestRedactSecretsIn(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"plain text", "hello world", "hello world"},
		{"URL without userinfo", "http://sidecar:7777/state.json", "http://sidecar:7777/state.json"},
		{"URL with user only", "https://deployer@registry.example.com/v2/", "https://deployer@registry.example.com/v2/"},
		{"proxy URL with password", "http://user:hunter2@proxy:3128", "http://user:" + redactedValue + "@proxy:3128"},
		{"password with an @", "https://u:p@ss@vault:8200/v1", "https://u:" + redactedValue + "@vault:8200/v1"},
		{"empty user", "https://:s3cret@vault", "https://:" + redactedValue + "@vault"},
		{"two URLs", "a=http://a:one@h1 b=socks5://b:two@h2:1080", "a=http://a:" + redactedValue + "@h1 b=socks5://b:" + redactedValue + "@h2:1080"},
		{"port is not a password", "http://proxy:3128/path@x", "http://proxy:3128/path@x"},
		{"bearer", "Bearer abc.def-ghi", "Bearer " + redactedValue},
		{"basic", "basic dXNlcjpwYXNz", "basic " + redactedValue},
		{"header line", "Authorization: s3cr3t", "Authorization: " + redactedValue},
		{"proxy header line", "Proxy-Authorization:Basic dXNlcjpw", "Proxy-Authorization:" + redactedValue},
		{"JSON headers", `{"Authorization":"Bearer abc"}`, `{"Authorization":"` + redactedValue + `"}`},
		{"JSON headers with spaces and others", `{"X-Request": "id-1", "X-Vault-Token" : "hvs.x", "Cookie": "a=b"}`,
			`{"X-Request": "id-1", "X-Vault-Token" : "` + redactedValue + `", "Cookie": "` + redactedValue + `"}`},
		{"JSON escaped quote in value", `{"api_key":"a\"b","user":"bob"}`, `{"api_key":"` + redactedValue + `","user":"bob"}`},
		{"JSON harmless keys", `{"region":"eu","timeout":"5s"}`, `{"region":"eu","timeout":"5s"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := redactSecretsIn(c.in); got != c.want {
				t.Errorf("redactSecretsIn(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestRedactEnvByNameAndByShape(t *testing.T) {
	env := []string{
		"HTTP_PROXY=http://user:hunter2@proxy:3128",
		"VAULT_ADDR=https://u:p@vault",
		`VAULT_HEADERS={"Authorization":"Bearer abc"}`,
		"DB_PASSWORD=plain-secret",
		"FROM_VAULT=resolved-secret",
		"GREETING=hello",
	}
	joined := strings.Join(redactEnv(env, "FROM_VAULT"), " ")
	for _, secret := range []string{"hunter2", ":p@", "Bearer abc", "plain-secret", "resolved-secret"} {
		if strings.Contains(joined, secret) {
			t.Errorf("%q survived redaction: %s", secret, joined)
		}
	}
	for _, visible := range []string{"http://user:", "@proxy:3128", "https://u:", "@vault", "GREETING=hello", `"Authorization"`} {
		if !strings.Contains(joined, visible) {
			t.Errorf("%q was redacted too, which hides what an operator needs: %s", visible, joined)
		}
	}
}

func TestExecutorEnvForLogRedactsProxiesAndVault(t *testing.T) {
	got := strings.Join(executorEnvForLog([]string{
		"HTTP_PROXY=http://user:hunter2@proxy:3128",
		"https_proxy=http://user:hunter3@proxy:3128",
		"VAULT_ADDR=https://u:p@vault",
		`VAULT_HEADERS={"Authorization":"Bearer abc"}`,
		"EXECUTOR_SIDECAR_URL=http://admin:sidecarpw@sidecar:7777/state.json",
		"HOME=/root",
	}), " ")
	for _, secret := range []string{"hunter2", "hunter3", ":p@", "Bearer abc", "sidecarpw"} {
		if strings.Contains(got, secret) {
			t.Errorf("%q logged at start-up: %s", secret, got)
		}
	}
	for _, want := range []string{"HTTP_PROXY=http://user:" + redactedValue + "@proxy:3128", "EXECUTOR_SIDECAR_URL=http://admin:" + redactedValue + "@sidecar:7777/state.json"} {
		if !strings.Contains(got, want) {
			t.Errorf("start-up log lacks %q: %s", want, got)
		}
	}
	if strings.Contains(got, "HOME=") {
		t.Errorf("unrelated variables logged: %s", got)
	}
}

func TestRedactedTaskInfoRedactsValueShapes(t *testing.T) {
	proxy := "http://user:hunter2@proxy:3128"
	info := mesos.TaskInfo{Executor: &mesos.ExecutorInfo{Command: &mesos.CommandInfo{Environment: &mesos.Environment{
		Variables: []mesos.Environment_Variable{{Name: "HTTP_PROXY", Value: &proxy}},
	}}}}
	got := redactedTaskInfo(info).Executor.Command.Environment.Variables[0].GetValue()
	if strings.Contains(got, "hunter2") {
		t.Errorf("TaskInfo dump keeps the proxy password: %q", got)
	}
	if proxy != "http://user:hunter2@proxy:3128" {
		t.Errorf("the original TaskInfo was modified")
	}
}

// FuzzRedactSecretsIn checks that a password planted in a URL never
// survives, whatever surrounds it, and that redaction is stable.
func FuzzRedactSecretsIn(f *testing.F) {
	f.Add("x", "http://u:%s@h")
	f.Add("pw", `{"Authorization":"Bearer %s"}`)
	f.Add("tok", "prefix https://a:%s@b/c suffix")
	f.Fuzz(func(t *testing.T, secret, template string) {
		if strings.Count(template, "%s") != 1 {
			return
		}
		// A password as a URL would carry it: no delimiters, not empty,
		// and long enough not to occur by chance in the rest.
		if len(secret) < 6 || strings.ContainsAny(secret, "/?#@ \t\r\n\"\\") {
			return
		}
		in := strings.Replace(template, "%s", secret, 1)
		out := redactSecretsIn(in)
		if redactSecretsIn(out) != out {
			t.Errorf("redaction is not stable: %q -> %q -> %q", in, out, redactSecretsIn(out))
		}
		if !strings.Contains(template, "://") {
			return
		}
		i := strings.Index(template, "%s")
		before := template[:i]
		scheme := strings.LastIndex(before, "://")
		authority := before[scheme+3:]
		if scheme < 1 || !strings.HasSuffix(authority, ":") || strings.ContainsAny(authority, "/?#@ \t\r\n") ||
			!strings.HasPrefix(template[i+2:], "@") || !isSchemeChars(before[:scheme]) {
			return
		}
		if strings.Contains(out, secret) && !strings.Contains(strings.Replace(template, "%s", "", 1), secret) {
			t.Errorf("URL password %q survived: %q -> %q", secret, in, out)
		}
	})
}

// isSchemeChars reports whether s ends in something the URL pattern takes
// for a scheme: a run of scheme characters holding a letter.
func isSchemeChars(s string) bool {
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			return true
		case c >= '0' && c <= '9' || c == '+' || c == '.' || c == '-':
		default:
			return false
		}
	}
	return false
}
