package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"berth.dev/berth/internal/secrets"
)

// cryptoCommands returns the commands of berth crypto (internal/secrets).
func cryptoCommands(app *App) []*cobra.Command {
	return []*cobra.Command{newCryptoCmd(app)}
}

// cryptoOpts are the flags every crypto subcommand shares.
type cryptoOpts struct {
	repo string
}

func newCryptoCmd(app *App) *cobra.Command {
	o := &cryptoOpts{}
	cmd := &cobra.Command{
		Use:   "crypto",
		Short: "Keep secrets encrypted in the workspace's git repository (git-crypt compatible)",
		Long: `berth crypto keeps secret files encrypted in git, byte-compatible with git-crypt
0.7: a repository berth encrypts can be unlocked with 'git-crypt unlock KEYFILE',
and berth unlocks repositories git-crypt encrypted.

The key lives outside the repository, in berth's home (~/.berth/keys, or
$BERTH_HOME/keys), with mode 0600. Share it with teammates by their age public key
(add-recipient) instead of passing key files around; rotate it when someone
leaves. berth refuses to commit a secret file in plaintext, and 'status' finds any
that ever was.`,
		Example: `  berth crypto init
  berth crypto add-recipient age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
  berth crypto status
  berth crypto unlock                  # with your age identity
  berth crypto unlock ~/backup.key     # with a key file (berth's or git-crypt's)`,
	}
	cmd.PersistentFlags().StringVarP(&o.repo, "repo", "C", ".", "the git repository (any directory inside it)")
	cmd.AddCommand(
		newCryptoInitCmd(app, o),
		newCryptoUnlockCmd(app, o),
		newCryptoLockCmd(app, o),
		newCryptoExportKeyCmd(app, o),
		newCryptoStatusCmd(app, o),
		newCryptoIdentityCmd(app),
		newCryptoAddRecipientCmd(app, o),
		newCryptoRemoveRecipientCmd(app, o),
		newCryptoRotateCmd(app, o),
		newCryptoGuardCmd(app, o),
	)
	for _, verb := range []string{"clean", "smudge", "diff"} {
		cmd.AddCommand(newCryptoFilterCmd(app, o, verb))
	}
	return cmd
}

// filterExecutable is the berth binary git runs as the filter. Invoked through
// PATH it stays "berth", as git-crypt does, so upgrades that move the binary keep
// working; BERTH_FILTER_EXECUTABLE overrides it (wrappers, tests).
func filterExecutable() (string, error) {
	if p := os.Getenv("BERTH_FILTER_EXECUTABLE"); p != "" {
		return p, nil
	}
	if len(os.Args) > 0 && !strings.ContainsRune(os.Args[0], filepath.Separator) {
		return os.Args[0], nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the berth binary for the git filter (set BERTH_FILTER_EXECUTABLE): %w", err)
	}
	return exe, nil
}

func newCryptoInitCmd(app *App, o *cryptoOpts) *cobra.Command {
	var (
		paths    []string
		noCommit bool
		out      output
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a key and encrypt the workspace's secret paths from now on",
		Long: `init generates a new key, stores it in berth's home (never in the repository),
writes .gitattributes so that the secret paths are encrypted, configures git to
run berth as the git-crypt filter, installs a pre-commit hook that refuses
plaintext secrets, and commits .gitattributes.

Back the key up with 'berth crypto export-key', or share it with add-recipient:
without it nobody can read the secrets.`,
		Example: `  berth crypto init
  berth crypto init --path 'secrets/**' --path '*.key'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			home, err := app.home()
			if err != nil {
				return err
			}
			exe, err := filterExecutable()
			if err != nil {
				return err
			}
			res, err := secrets.Init(ctx, o.repo, secrets.InitOptions{Home: home, Executable: exe, Patterns: paths})
			if err != nil {
				return err
			}
			hook, err := secrets.InstallHook(ctx, o.repo, exe)
			if err != nil {
				return err
			}
			committed := false
			if len(res.Paths) > 0 && !noCommit {
				if committed, err = secrets.Commit(ctx, o.repo, "crypto: encrypt secret files with berth (git-crypt compatible)", res.Paths...); err != nil {
					return err
				}
			}
			if out == outputJSON {
				return writeJSON(app.Out, map[string]any{"keyId": res.KeyID, "keyFile": res.KeyPath, "hook": hook, "committed": committed})
			}
			fmt.Fprintf(app.Out, "Created key %s in %s.\n", res.KeyID, res.KeyPath)
			if hook {
				fmt.Fprintln(app.Out, "Installed a pre-commit hook that refuses secret files in plaintext.")
			}
			fmt.Fprintln(app.Out, "Back the key up ('berth crypto export-key FILE') or share it ('berth crypto add-recipient AGE_PUBLIC_KEY'): without it the secrets are lost.")
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&paths, "path", nil, "a secret path pattern in .gitattributes syntax (repeatable; default: "+strings.Join(secrets.DefaultSecretPaths, ", ")+")")
	cmd.Flags().BoolVar(&noCommit, "no-commit", false, "write .gitattributes (and stage tracked secret files encrypted) but do not commit")
	addOutputFlag(cmd, &out)
	return cmd
}

// identityPath is where berth keeps the user's age identity.
func identityPath(home string) string {
	return filepath.Join(secrets.KeysDir(home), "age-identity.txt")
}

func newCryptoUnlockCmd(app *App, o *cryptoOpts) *cobra.Command {
	var identity, rev string
	cmd := &cobra.Command{
		Use:   "unlock [KEYFILE]",
		Short: "Decrypt the secret files in this clone, with a key file or your age identity",
		Long: `unlock configures this clone to decrypt its secret files and checks them out in
plaintext. With KEYFILE it uses that key file (exported by berth, or by
'git-crypt export-key'); without it, it unwraps the repository's key with your age
identity (see 'berth crypto identity'). The key is stored in berth's home.

Every encrypted file is checked against the key first: with a wrong key nothing
changes.

In a clone that is already unlocked, unlock adds the newer versions of the same
key (after a teammate ran 'berth crypto rotate'): when 'git pull' fails because a
file was "encrypted with another key", run 'berth crypto unlock --rev FETCH_HEAD'
and pull again.`,
		Example: `  berth crypto unlock
  berth crypto unlock ./team.key
  berth crypto unlock --identity ~/.config/age/keys.txt
  berth crypto unlock --rev FETCH_HEAD   # after a teammate rotated the key`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			home, err := app.home()
			if err != nil {
				return err
			}
			exe, err := filterExecutable()
			if err != nil {
				return err
			}
			var key *secrets.Key
			if len(args) == 1 {
				if key, err = secrets.ReadKeyFile(args[0]); err != nil {
					return err
				}
			} else {
				if identity == "" {
					identity = identityPath(home)
				}
				f, err := os.Open(identity)
				if err != nil {
					return fmt.Errorf("no key file given and no age identity at %s: pass KEYFILE, --identity FILE, or create one with 'berth crypto identity' and ask a teammate to add it: %w", identity, err)
				}
				defer f.Close()
				if key, err = secrets.UnwrapKeyAt(ctx, o.repo, rev, f); err != nil {
					return err
				}
			}
			if current, _, err := secrets.RepoKey(ctx, o.repo); err == nil && current.ID() == key.ID() {
				merged, err := secrets.RefreshKey(ctx, o.repo, key)
				if err != nil {
					return err
				}
				latest, err := merged.Latest()
				if err != nil {
					return err
				}
				fmt.Fprintf(app.Out, "Already unlocked; key %s now has version %d. Retry the git command that failed (for example 'git checkout -- . && git pull').\n", key.ID(), latest.Version)
				return nil
			}
			path, err := secrets.Unlock(ctx, o.repo, key, secrets.UnlockOptions{Home: home, Executable: exe})
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Out, "Unlocked with key %s (%s).\n", key.ID(), path)
			return nil
		},
	}
	cmd.Flags().StringVar(&identity, "identity", "", "age identity file (default: the one 'berth crypto identity' created)")
	cmd.Flags().StringVar(&rev, "rev", "", "read the wrapped key as committed at this revision (e.g. FETCH_HEAD) instead of the working tree")
	return cmd
}

func newCryptoLockCmd(app *App, o *cryptoOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "lock",
		Short: "Remove the filter and leave the secret files encrypted in this clone",
		Long: `lock removes the git filter from this clone and checks the secret files out as
ciphertext. The key stays in berth's home, so 'berth crypto unlock KEYFILE' or
your age identity unlocks again. The pre-commit hook keeps refusing plaintext
secret files while the clone is locked.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := secrets.Lock(cmd.Context(), o.repo); err != nil {
				return err
			}
			fmt.Fprintln(app.Out, "Locked: secret files are encrypted in the working tree.")
			return nil
		},
	}
}

func newCryptoExportKeyCmd(app *App, o *cryptoOpts) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "export-key FILE",
		Short: "Write the key to FILE in git-crypt's format (mode 0600)",
		Long: `export-key writes the key this clone is unlocked with to FILE, in the format of
'git-crypt export-key', so 'git-crypt unlock FILE' and 'berth crypto unlock FILE'
both accept it. After a rotation the file holds only the current key (git-crypt
reads no other); berth's own copy keeps the old ones for history.`,
		Example: `  berth crypto export-key ~/backup/workspace.key`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, _, err := secrets.RepoKey(cmd.Context(), o.repo)
			if err != nil {
				return err
			}
			exported, err := key.Export()
			if err != nil {
				return err
			}
			if _, err := os.Stat(args[0]); err == nil && !force {
				return fmt.Errorf("%s already exists; pass --force to overwrite it", args[0])
			}
			if err := secrets.WriteKeyFile(args[0], exported); err != nil {
				return err
			}
			fmt.Fprintf(app.Out, "Wrote key %s to %s. Keep it as safe as the secrets themselves.\n", key.ID(), args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite FILE")
	return cmd
}

// cryptoStatus is the -o json shape of berth crypto status. It names files and
// keys by path and ID, never by content.
type cryptoStatus struct {
	Repo       string                `json:"repo"`
	Locked     bool                  `json:"locked"`
	Filter     bool                  `json:"filterConfigured"`
	KeyID      string                `json:"keyId,omitempty"`
	KeyFile    string                `json:"keyFile,omitempty"`
	Recipients []string              `json:"recipients"`
	Files      []cryptoFile          `json:"files"`
	Leaks      []secrets.HistoryLeak `json:"historyLeaks"`
}

type cryptoFile struct {
	Path      string `json:"path"`
	Encrypted bool   `json:"encrypted"`
}

func newCryptoStatusCmd(app *App, o *cryptoOpts) *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show which files are encrypted, and any secret file ever committed in plaintext",
		Long: `status lists the secret files in the index and whether git holds them encrypted,
the repository's recipients, and every version of a secret file that was
committed in plaintext anywhere in history. It exits non-zero when it finds a
plaintext secret file, so it can run in CI.`,
		Example: `  berth crypto status
  berth crypto status -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			repo, err := filepath.Abs(o.repo)
			if err != nil {
				return err
			}
			st := cryptoStatus{Repo: repo, Recipients: []string{}, Files: []cryptoFile{}, Leaks: []secrets.HistoryLeak{}}
			if st.Filter, err = secrets.FilterConfigured(ctx, o.repo); err != nil {
				return err
			}
			key, path, err := secrets.RepoKey(ctx, o.repo)
			switch {
			case errors.Is(err, secrets.ErrLocked):
				st.Locked = true
			case err != nil:
				return err
			default:
				st.KeyID, st.KeyFile = key.ID(), path
			}
			st.Locked = st.Locked || !st.Filter
			if rs, err := secrets.Recipients(ctx, o.repo); err != nil {
				return err
			} else if rs != nil {
				st.Recipients = rs
			}
			files, err := secrets.SecretFiles(ctx, o.repo)
			if err != nil {
				return err
			}
			plain, err := stagedPlaintext(cmd, o.repo)
			if err != nil {
				return err
			}
			for _, f := range files {
				st.Files = append(st.Files, cryptoFile{Path: f, Encrypted: !plain[f]})
			}
			leaks, err := secrets.PlaintextInHistory(ctx, o.repo)
			if err != nil {
				return err
			}
			if leaks != nil {
				st.Leaks = leaks
			}
			if out == outputJSON {
				if err := writeJSON(app.Out, st); err != nil {
					return err
				}
			} else {
				printCryptoStatus(app, st)
			}
			if len(plain) > 0 || len(st.Leaks) > 0 {
				return fmt.Errorf("%d secret file(s) staged in plaintext and %d plaintext version(s) in history: re-stage staged ones in an unlocked clone; for history, change those secret values (they are exposed) and rewrite history (git filter-repo), then push with care", len(plain), len(st.Leaks))
			}
			return nil
		},
	}
	addOutputFlag(cmd, &out)
	return cmd
}

// stagedPlaintext returns the secret files staged unencrypted, from the leak guard.
func stagedPlaintext(cmd *cobra.Command, repo string) (map[string]bool, error) {
	res := map[string]bool{}
	err := secrets.CheckStaged(cmd.Context(), repo)
	var leak *secrets.LeakError
	if errors.As(err, &leak) {
		for _, p := range leak.Paths {
			res[p] = true
		}
		return res, nil
	}
	return res, err
}

func printCryptoStatus(app *App, st cryptoStatus) {
	state := "unlocked"
	if st.Locked {
		state = "locked (run 'berth crypto unlock')"
	}
	fmt.Fprintf(app.Out, "Repository: %s\n", state)
	if st.KeyID != "" {
		fmt.Fprintf(app.Out, "Key:        %s (%s)\n", st.KeyID, st.KeyFile)
	}
	fmt.Fprintf(app.Out, "Recipients: %d\n", len(st.Recipients))
	for _, r := range st.Recipients {
		fmt.Fprintf(app.Out, "  %s\n", r)
	}
	if len(st.Files) == 0 {
		fmt.Fprintln(app.Out, "No secret files.")
	} else {
		tw := tabwriter.NewWriter(app.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FILE\tIN GIT")
		for _, f := range st.Files {
			state := "encrypted"
			if !f.Encrypted {
				state = "PLAINTEXT (staged)"
			}
			fmt.Fprintf(tw, "%s\t%s\n", f.Path, state)
		}
		tw.Flush()
	}
	for _, l := range st.Leaks {
		fmt.Fprintf(app.Out, "PLAINTEXT IN HISTORY: %s (blob %s, commit %s)\n", l.Path, short(l.Blob), short(l.Commit))
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func newCryptoIdentityCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "identity",
		Short: "Print your age public key, creating your age identity on first use",
		Long: `identity prints the age public key a teammate passes to 'berth crypto
add-recipient' so that you can unlock with 'berth crypto unlock'. The private
identity is created on first use in berth's home (mode 0600).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := app.home()
			if err != nil {
				return err
			}
			path := identityPath(home)
			b, err := os.ReadFile(path)
			if errors.Is(err, os.ErrNotExist) {
				id, err := age.GenerateX25519Identity()
				if err != nil {
					return err
				}
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					return err
				}
				text := "# berth age identity; public key: " + id.Recipient().String() + "\n" + id.String() + "\n"
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return fmt.Errorf("creating the age identity: %w", err)
				}
				if _, err := f.WriteString(text); err != nil {
					f.Close()
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
				b = []byte(text)
			} else if err != nil {
				return fmt.Errorf("reading the age identity: %w", err)
			}
			ids, err := age.ParseIdentities(strings.NewReader(string(b)))
			if err != nil {
				return fmt.Errorf("%s is not an age identity file: %w", path, err)
			}
			x, ok := ids[0].(*age.X25519Identity)
			if !ok {
				return fmt.Errorf("%s: the first identity is not an X25519 age identity", path)
			}
			fmt.Fprintln(app.Out, x.Recipient().String())
			return nil
		},
	}
}

// commitOrSay commits paths through the leak guard, or tells the user what to commit.
func commitOrSay(cmd *cobra.Command, app *App, repo string, noCommit bool, message string, paths []string) error {
	if noCommit {
		fmt.Fprintf(app.Out, "Not committed: %s\n", strings.Join(paths, " "))
		return nil
	}
	committed, err := secrets.Commit(cmd.Context(), repo, message, paths...)
	if err != nil {
		return err
	}
	if committed {
		fmt.Fprintf(app.Out, "Committed: %s\n", message)
	} else {
		fmt.Fprintln(app.Out, "Nothing changed; no commit.")
	}
	return nil
}

func newCryptoAddRecipientCmd(app *App, o *cryptoOpts) *cobra.Command {
	var noCommit bool
	cmd := &cobra.Command{
		Use:   "add-recipient AGE_PUBLIC_KEY",
		Short: "Let a teammate unlock with their own age identity",
		Long: `add-recipient wraps the repository's key (with its history) for the holder of
AGE_PUBLIC_KEY, stores it in ` + secrets.RecipientsDir + ` and commits it. The teammate
gets their public key from 'berth crypto identity' and unlocks with
'berth crypto unlock'.`,
		Example: `  berth crypto add-recipient age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, _, err := secrets.RepoKey(cmd.Context(), o.repo)
			if err != nil {
				return err
			}
			paths, err := secrets.AddRecipient(cmd.Context(), o.repo, key, args[0])
			if err != nil {
				return err
			}
			return commitOrSay(cmd, app, o.repo, noCommit, "crypto: share the secrets key with "+args[0], paths)
		},
	}
	cmd.Flags().BoolVar(&noCommit, "no-commit", false, "write the files but do not commit them")
	return cmd
}

func newCryptoRemoveRecipientCmd(app *App, o *cryptoOpts) *cobra.Command {
	var noCommit bool
	cmd := &cobra.Command{
		Use:   "remove-recipient AGE_PUBLIC_KEY",
		Short: "Stop wrapping the key for a teammate",
		Long: `remove-recipient re-wraps the key for everyone except AGE_PUBLIC_KEY and commits.
The removed teammate may still hold the key and has seen the secrets: run
'berth crypto rotate' and change the secret values too.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, _, err := secrets.RepoKey(cmd.Context(), o.repo)
			if err != nil {
				return err
			}
			paths, err := secrets.RemoveRecipient(cmd.Context(), o.repo, key, args[0])
			if err != nil {
				return err
			}
			if err := commitOrSay(cmd, app, o.repo, noCommit, "crypto: stop sharing the secrets key with "+args[0], paths); err != nil {
				return err
			}
			fmt.Fprintln(app.Out, "They may still hold the key: run 'berth crypto rotate' and change the secret values.")
			return nil
		},
	}
	cmd.Flags().BoolVar(&noCommit, "no-commit", false, "write the files but do not commit them")
	return cmd
}

func newCryptoRotateCmd(app *App, o *cryptoOpts) *cobra.Command {
	var noCommit bool
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Encrypt everything with a new key from now on; keep the old one for history",
		Long: `rotate adds a new key version, re-encrypts every secret file with it, re-wraps
the key for the recipients and commits. berth keeps the old versions so history
still decrypts; a key exported afterwards (and git-crypt) reads only the new one.
Rotating the key does not change the secrets: change them too if they leaked.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := secrets.Rotate(cmd.Context(), o.repo)
			if err != nil {
				return err
			}
			fmt.Fprintf(app.Out, "Rotated to key version %d.\n", res.Version)
			if len(res.Paths) == 0 {
				return nil
			}
			return commitOrSay(cmd, app, o.repo, noCommit, fmt.Sprintf("crypto: rotate the secrets key to version %d", res.Version), res.Paths)
		},
	}
	cmd.Flags().BoolVar(&noCommit, "no-commit", false, "stage the re-encrypted files but do not commit them")
	return cmd
}

func newCryptoGuardCmd(app *App, o *cryptoOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "guard",
		Short: "Fail if a secret file is staged in plaintext (the pre-commit hook)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return secrets.CheckStaged(cmd.Context(), o.repo)
		},
	}
}

// newCryptoFilterCmd is what git runs: clean and smudge between stdin and stdout,
// diff (textconv) on a file. Hidden: users never type them.
func newCryptoFilterCmd(app *App, o *cryptoOpts, verb string) *cobra.Command {
	var (
		keyFile, file string
		reencrypt     bool
	)
	use := verb
	args := cobra.NoArgs
	if verb == "diff" {
		use, args = "diff FILE", cobra.ExactArgs(1)
	}
	cmd := &cobra.Command{
		Use:    use,
		Short:  "git's " + verb + " filter for secret files (run by git)",
		Hidden: true,
		Args:   args,
		RunE: func(cmd *cobra.Command, args []string) error {
			var key *secrets.Key
			var err error
			if keyFile != "" {
				key, err = secrets.ReadKeyFile(keyFile)
			} else {
				key, _, err = secrets.RepoKey(cmd.Context(), o.repo)
			}
			if err != nil {
				return err
			}
			in, out := cmd.InOrStdin(), cmd.OutOrStdout()
			name := file
			if name == "" {
				name = "a secret file"
			}
			switch verb {
			case "clean":
				err = secrets.CleanFile(cmd.Context(), o.repo, file, key, reencrypt, in, out)
			case "smudge":
				var res secrets.SmudgeResult
				res, err = secrets.Smudge(key, in, out)
				if res == secrets.PassedThrough && err == nil {
					fmt.Fprintf(app.Err, "berth: warning: %s is not encrypted in git; run 'berth crypto status' for every such file\n", name)
				}
			default:
				return secrets.Diff(key, args[0], out)
			}
			if errors.Is(err, secrets.ErrTampered) {
				err = fmt.Errorf("%w (if a teammate rotated the key: 'berth crypto unlock --rev FETCH_HEAD', then retry)", err)
			}
			if err != nil && file != "" {
				return fmt.Errorf("%s: %w", file, err)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "key file (default: the key this clone is unlocked with)")
	cmd.Flags().StringVar(&file, "file", "", "the file's path (git passes %f)")
	if verb == "clean" {
		cmd.Flags().BoolVar(&reencrypt, "reencrypt", false, "encrypt with the newest key version even when the index holds an older ciphertext of the same content")
	}
	return cmd
}
