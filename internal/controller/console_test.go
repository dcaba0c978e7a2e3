package controller

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	berthv1 "berth.dev/berth/api/v1alpha1"
	"berth.dev/berth/internal/catalog"
	"berth.dev/berth/internal/console"
	"berth.dev/berth/internal/lifecycle"
	"berth.dev/berth/internal/localcluster"
	"berth.dev/berth/internal/secrets"
	"berth.dev/berth/internal/testcluster"
	"berth.dev/berth/internal/workspace"
)

// localCluster is the local cluster the tests run against, for the address
// kwok forwards a pod's console port to.
func localCluster(t *testing.T) *localcluster.Cluster {
	t.Helper()
	dir := filepath.Dir(testcluster.Kubeconfig(t))
	c, err := localcluster.Open(filepath.Dir(filepath.Dir(dir)), filepath.Base(dir))
	if err != nil {
		t.Fatalf("opening the test cluster's state: %v", err)
	}
	if c.ConsoleAddr() == "" {
		t.Fatalf("the test cluster %s has no console port (Ports.Console): it was created by an older berth; recreate it", c.Dir)
	}
	return c
}

// consoleWorkspace is a workspace with secrets, one memcached app (the
// fixture catalog's: a ConfigMap of its settings), and the Secret of its
// key in the controller's namespace.
type consoleWorkspace struct {
	ws        *workspace.Workspace
	app, ns   string
	keySecret string
}

func newConsoleWorkspace(t *testing.T, ctrlNS string) *consoleWorkspace {
	t.Helper()
	ctx := context.Background()
	home := t.TempDir()
	ws, _, err := lifecycle.Init(ctx, filepath.Join(t.TempDir(), "ws"), lifecycle.InitOptions{Home: home, Executable: testcluster.BerthBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	set, err := catalog.OpenRefs(home, ws.Root, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &consoleWorkspace{ws: ws, app: testcluster.UniqueName(t, 20), ns: testcluster.Namespace(t), keySecret: "key"}
	env := &lifecycle.Env{WS: ws, Catalogs: set}
	if _, err := env.Install(ctx, lifecycle.InstallOptions{Package: "memcached", Name: w.app, Namespace: w.ns}); err != nil {
		t.Fatal(err)
	}
	_, keyPath, err := secrets.RepoKey(ctx, ws.Root)
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := kube(t).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ctrlNS, Name: w.keySecret}, Data: map[string][]byte{berthv1.DecryptionKeyKey: key}}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *consoleWorkspace) git(t *testing.T, args ...string) string {
	t.Helper()
	return strings.TrimSpace(run(t, w.ws.Root, "git", args...))
}

// controllerDeployment is the controller's Deployment as bootstrap
// installs it, in shape: kwok runs its pod (which runs nothing) and forwards
// a port-forward to its console port to the cluster's console address,
// where the test's controller serves. withConsole=false is a controller
// from before the console.
func controllerDeployment(t *testing.T, ns string, replicas int32, withConsole bool) {
	t.Helper()
	labels := map[string]string{"app.kubernetes.io/name": "berth-controller"}
	ports := []corev1.ContainerPort{{Name: "webhook", ContainerPort: 9292}}
	if withConsole {
		ports = append(ports, corev1.ContainerPort{Name: ConsolePortName, ContainerPort: ConsolePort})
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "berth-controller", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "controller", Image: "berth:test", Ports: ports}}},
			},
		},
	}
	if _, err := testcluster.Clientset(t).AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// readyPods are the names of the controller's ready pods.
func readyPods(ctx context.Context, t *testing.T, ns string) []string {
	pods, err := testcluster.Clientset(t).CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=berth-controller"})
	if err != nil {
		return nil
	}
	var names []string
	for _, p := range pods.Items {
		for _, c := range p.Status.Conditions {
			if p.DeletionTimestamp == nil && c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				names = append(names, p.Name)
			}
		}
	}
	return names
}

// person is a directory whose git identity is the person running 'berth
// console --port-forward'.
func person(t *testing.T, name, email string) string {
	t.Helper()
	dir := t.TempDir()
	run(t, dir, "git", "init", "--quiet")
	run(t, dir, "git", "config", "user.name", name)
	run(t, dir, "git", "config", "user.email", email)
	return dir
}

// portForward is a running 'berth console --port-forward'.
type portForward struct {
	cmd    *exec.Cmd
	url    string
	stderr *lockedBuffer
	done   chan error
}

var signInURL = regexp.MustCompile(`http://\S+/signin\?token=\S+`)

// startPortForward runs the real berth binary and waits for the link it
// prints.
func startPortForward(t *testing.T, dir string, args ...string) *portForward {
	t.Helper()
	cmd := exec.Command(testcluster.BerthBinary(t), append([]string{"console", "--port-forward", "--kubeconfig", testcluster.Kubeconfig(t), "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BERTH_HOME="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &portForward{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		p.done <- cmd.Wait()
		close(p.done)
	}()
	timeout := time.After(2 * time.Minute)
	for p.url == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("berth console --port-forward ended without a sign-in link: %s", p.stderr.String())
			}
			p.url = signInURL.FindString(l)
		case <-timeout:
			t.Fatalf("no sign-in link from berth console --port-forward within 2m: %s", p.stderr.String())
		}
	}
	go func() {
		for range lines {
		}
	}()
	return p
}

// interrupt stops it as Ctrl-C does and returns its exit error.
func (p *portForward) interrupt(t *testing.T) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("berth console --port-forward did not stop within a minute of SIGINT")
	}
	return nil
}

// browser is an HTTP client with cookies that does not follow redirects.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 5 * time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// postConfig sets a parameter of app through the console's form.
func postConfig(t *testing.T, c *http.Client, base, app, param, value string) (int, string) {
	t.Helper()
	code, page := get(t, c, base+"/apps/"+app)
	m := csrfField.FindStringSubmatch(page)
	if code != http.StatusOK || m == nil {
		t.Fatalf("GET /apps/%s = %d without a CSRF token:\n%s", app, code, page)
	}
	resp, err := c.PostForm(base+"/apps/"+app+"/config", url.Values{"csrf": {m[1]}, "p." + param: {value}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b) + resp.Header.Get("Location")
}

// waitConsole waits until the console at base serves its sign-in page.
func waitConsole(t *testing.T, b *http.Client, base string) {
	t.Helper()
	testcluster.WaitFor(t, 2*time.Minute, func(ctx context.Context) (bool, string, error) {
		resp, err := b.Get(base + "/signin")
		if err != nil {
			return false, err.Error(), nil
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status + " " + string(body), nil
	})
}

func signInSecrets(t *testing.T, ns string) int {
	t.Helper()
	list, err := testcluster.Clientset(t).CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: console.LabelSignIn + "=true"})
	if err != nil {
		t.Fatal(err)
	}
	return len(list.Items)
}

// The console the controller serves, reached with the real 'berth console
// --port-forward' through the API server's port-forward to the controller's
// pod (kwok forwards it to where the test's controller listens): the
// printed link signs the person in once, a configuration change is a
// commit by them in the Workspace's repository that the controller
// deploys, the forward follows the controller's next pod when its pod goes,
// and Ctrl-C ends it without leaving a sign-in Secret behind.
func TestConsoleInTheControllerThroughPortForward(t *testing.T) {
	installCRD(t)
	ctx := context.Background()
	lc := localCluster(t)
	ns := testcluster.Namespace(t)
	w := newConsoleWorkspace(t, ns)
	r := startController(t, ns, func(o *Options) {
		o.Console = ConsoleOptions{Addr: lc.ConsoleAddr(), Executable: testcluster.BerthBinary(t), Retry: time.Second}
	})
	if r.c.ConsoleAddr() != lc.ConsoleAddr() {
		t.Fatalf("ConsoleAddr = %q, want %q", r.c.ConsoleAddr(), lc.ConsoleAddr())
	}
	k := kube(t)
	createWorkspace(t, k, ns, "ws", "file://"+w.ws.Root, func(ws *berthv1.Workspace) {
		ws.Spec.DecryptionRef = &berthv1.LocalSecretReference{Name: w.keySecret}
		ws.Spec.Timeout = metav1.Duration{Duration: time.Minute}
	})
	waitWorkspace(t, k, ns, "ws", 3*time.Minute, readyAt(w.git(t, "rev-parse", "HEAD")))
	controllerDeployment(t, ns, 1, true)
	testcluster.WaitFor(t, 2*time.Minute, func(ctx context.Context) (bool, string, error) {
		pods := readyPods(ctx, t, ns)
		return len(pods) == 1, fmt.Sprintf("ready controller pods: %v", pods), nil
	})

	pf := startPortForward(t, person(t, "Grace Hopper", "grace@example.com"), "-n", ns)
	base := strings.SplitN(pf.url, "/signin", 2)[0]
	if n := signInSecrets(t, ns); n != 1 {
		t.Fatalf("%d sign-in Secrets in %s, want the one just made", n, ns)
	}
	b := browser(t)
	// Until its clone is made, the console says so (503).
	waitConsole(t, b, base)
	// A person signs in with the printed link in a real browser, sees the
	// apps and changes the configuration through the form.
	cctx := chromium(t)
	page := func(step string, actions ...chromedp.Action) {
		t.Helper()
		sctx, cancel := context.WithTimeout(cctx, 3*time.Minute)
		defer cancel()
		if err := chromedp.Run(sctx, actions...); err != nil {
			var text string
			hctx, cancel := context.WithTimeout(cctx, 5*time.Second)
			defer cancel()
			_ = chromedp.Run(hctx, chromedp.Evaluate(`location.href + "\n" + (document.body ? document.body.innerText.slice(0, 3000) : "")`, &text))
			t.Fatalf("%s: %v\n%s", step, err, text)
		}
	}
	appLink := `a[href="/apps/` + w.app + `"]`
	page("sign in through the forward", chromedp.Navigate(pf.url), chromedp.WaitVisible(appLink, chromedp.ByQuery))
	screenshot(t, cctx, "port-forward-signed-in")
	if n := signInSecrets(t, ns); n != 0 {
		t.Errorf("%d sign-in Secrets left after the sign-in, want it deleted (one use)", n)
	}
	// The link works once.
	if code, page := get(t, b, pf.url); code != http.StatusUnauthorized || !strings.Contains(page, "already used") {
		t.Errorf("the link's second use = %d, want 401 'already used':\n%s", code, page)
	}

	before := w.git(t, "rev-parse", "HEAD")
	page("change threads",
		chromedp.Click(appLink, chromedp.ByQuery),
		chromedp.WaitVisible("#p-threads", chromedp.ByQuery),
		chromedp.SetValue("#p-threads", "8", chromedp.ByQuery),
		chromedp.Click("#save-config", chromedp.ByQuery),
		chromedp.WaitVisible(".flash.ok", chromedp.ByQuery),
	)
	head := w.git(t, "rev-parse", "HEAD")
	if head == before {
		t.Fatal("the change was not pushed to the Workspace's repository")
	}
	if who := w.git(t, "log", "-1", "--format=%an <%ae>", head); who != "Grace Hopper <grace@example.com>" {
		t.Errorf("the change's author is %q, want the signed-in person", who)
	}
	if app := w.git(t, "show", head+":apps/"+w.app+"/app.yaml"); !strings.Contains(app, "threads: 8") {
		t.Errorf("app.yaml at %s lacks threads: 8:\n%s", head, app)
	}
	waitWorkspace(t, k, ns, "ws", 3*time.Minute, readyAt(head))
	if cm := getCM(t, k, w.ns, w.app+"-settings"); cm.Data["threads"] != "8" {
		t.Errorf("the deployed settings = %v, want threads 8", cm.Data)
	}

	// The pod goes: the forward follows the Deployment's next one, on the
	// same local port, and the session still works.
	pods := readyPods(ctx, t, ns)
	if err := testcluster.Clientset(t).CoreV1().Pods(ns).Delete(ctx, pods[0], metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	// Between the two pods the local port is closed; the command says when
	// it forwards again.
	testcluster.WaitFor(t, 2*time.Minute, func(ctx context.Context) (bool, string, error) {
		out := pf.stderr.String()
		return strings.Contains(out, "finding the controller's pod again") && strings.Contains(out, "again, now to pod"), out, nil
	})
	page("the overview through the next pod", chromedp.Navigate(base+"/"), chromedp.WaitVisible(appLink, chromedp.ByQuery))

	if err := pf.interrupt(t); err != nil {
		t.Errorf("berth console --port-forward ended with %v after Ctrl-C: %s", err, pf.stderr.String())
	}

	// A link never used: Ctrl-C deletes its Secret.
	pf = startPortForward(t, person(t, "Alan Turing", "alan@example.com"), "-n", ns)
	if n := signInSecrets(t, ns); n != 1 {
		t.Fatalf("%d sign-in Secrets, want 1", n)
	}
	if err := pf.interrupt(t); err != nil {
		t.Errorf("exit after Ctrl-C: %v: %s", err, pf.stderr.String())
	}
	if n := signInSecrets(t, ns); n != 0 {
		t.Errorf("%d sign-in Secrets left after Ctrl-C, want the unused one deleted", n)
	}
}

// With a credential that may read but not push, a change made in the
// console is refused with what to do (and no credential in the message),
// and the repository is left as it was.
func TestConsoleInTheControllerWithAReadOnlyCredential(t *testing.T) {
	installCRD(t)
	ctx := context.Background()
	ns := testcluster.Namespace(t)
	w := newConsoleWorkspace(t, ns)
	g := newGitServer(t)
	tok := "s3cret-t0ken"
	g.token.Store(&tok)
	bare := filepath.Join(g.root, "ws.git")
	run(t, "", "git", "clone", "--quiet", "--bare", w.ws.Root, bare)
	k := kube(t)
	if err := k.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "git"}, Data: map[string][]byte{berthv1.GitPasswordKey: []byte(tok)}}); err != nil {
		t.Fatal(err)
	}
	r := startController(t, ns, func(o *Options) {
		o.Console = ConsoleOptions{Addr: "127.0.0.1:0", Executable: testcluster.BerthBinary(t), Retry: time.Second}
	})
	createWorkspace(t, k, ns, "ws", g.srv.URL+"/ws.git", func(ws *berthv1.Workspace) {
		ws.Spec.DecryptionRef = &berthv1.LocalSecretReference{Name: w.keySecret}
		ws.Spec.SecretRef = &berthv1.LocalSecretReference{Name: "git"}
		ws.Spec.Timeout = metav1.Duration{Duration: time.Minute}
	})
	before := strings.TrimSpace(run(t, bare, "git", "rev-parse", "main"))
	waitWorkspace(t, k, ns, "ws", 3*time.Minute, readyAt(before))

	signIn, err := console.MintSignIn(ctx, testcluster.Clientset(t), ns, console.User{Name: "Grace Hopper", Email: "grace@example.com"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + r.c.ConsoleAddr()
	b := browser(t)
	waitConsole(t, b, base)
	if code, page := get(t, b, base+"/signin?token="+url.QueryEscape(signIn.Token)); code != http.StatusSeeOther {
		t.Fatalf("sign-in = %d:\n%s", code, page)
	}
	code, page := postConfig(t, b, base, w.app, "threads", "8")
	if code == http.StatusSeeOther || !strings.Contains(page, "can read but not write") || !strings.Contains(page, "spec.upgrades.writeSecretRef") {
		t.Errorf("a change with a read-only credential = %d, want the refusal and what to do:\n%s", code, page)
	}
	if strings.Contains(page, tok) {
		t.Error("the page shows the git credential")
	}
	if after := strings.TrimSpace(run(t, bare, "git", "rev-parse", "main")); after != before {
		t.Errorf("the repository moved from %s to %s", before, after)
	}
	// The console's checkout holds nothing the remote does not: the next
	// page shows the app as it was.
	if code, page := get(t, b, base+"/apps/"+w.app); code != http.StatusOK || strings.Contains(page, `value="8"`) {
		t.Errorf("the app page after the refused change = %d, showing threads 8", code)
	}
}

// chromium starts headless Chromium (Debian's package; 'make deps'
// installs it) for one test.
func chromium(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed: run 'make deps' (Debian: apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// screenshot saves the page as a test artifact, next to the console's.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	dir := filepath.Join(os.TempDir(), "berth-console-screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", file)
}

// lockedBuffer collects a process's output for several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
