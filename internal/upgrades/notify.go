package upgrades

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"

	"berth.dev/berth/internal/workspace"
)

// NotificationPayload is the generic JSON a notification webhook receives
// (format json).
type NotificationPayload struct {
	Workspace string `json:"workspace"`
	Event
}

// slackPayload is what a Slack-compatible incoming webhook accepts.
type slackPayload struct {
	Text string `json:"text"`
}

// URLResolver returns the webhook URL of a notification (from its Secret);
// URLs from the environment are read by Notify itself.
type URLResolver func(ctx context.Context, n workspace.Notification) (string, error)

// Notify posts each event to the notifications that want it. Errors name the
// notification, never its URL (a secret: it carries the webhook's token).
func Notify(ctx context.Context, client *http.Client, wsKey string, notifications []workspace.Notification, secretURL URLResolver, events []Event) []error {
	if client == nil {
		client = defaultClient
	}
	var errs []error
	for _, n := range notifications {
		var want []Event
		for _, ev := range events {
			if len(n.Events) == 0 || slices.Contains(n.Events, ev.Type.String()) {
				want = append(want, ev)
			}
		}
		if len(want) == 0 {
			continue
		}
		u, err := notificationURL(ctx, n, secretURL)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, ev := range want {
			var body any = NotificationPayload{Workspace: wsKey, Event: ev}
			if n.Format == workspace.FormatSlack {
				body = slackPayload{Text: fmt.Sprintf("berth (%s): %s %s", wsKey, ev.Type, ev.Message)}
			}
			if err := post(ctx, client, u, body); err != nil {
				errs = append(errs, fmt.Errorf("notification %s, event %s of %s: %w", n.Name, ev.Type, ev.App, err))
			}
		}
	}
	return errs
}

func notificationURL(ctx context.Context, n workspace.Notification, secretURL URLResolver) (string, error) {
	if n.URLEnv != "" {
		u := os.Getenv(n.URLEnv)
		if u == "" {
			return "", fmt.Errorf("notification %s: the environment variable %s (urlEnv) is empty", n.Name, n.URLEnv)
		}
		return u, nil
	}
	if secretURL == nil {
		return "", fmt.Errorf("notification %s: its URL is in Secret %s, which only the controller reads", n.Name, n.URLSecret.Name)
	}
	return secretURL(ctx, n)
}

func post(ctx context.Context, client *http.Client, u string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return errors.New("the URL is not valid") // never echo it
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("posting failed: %w", ue.Err) // without the URL
		}
		return errors.New("posting failed")
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the webhook answered %s", resp.Status)
	}
	return nil
}
