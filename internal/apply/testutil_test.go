package apply

import (
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func itoa(i int) string { return strconv.Itoa(i) }

func unstructuredInt(obj map[string]any, fields ...string) (int64, bool, error) {
	return unstructured.NestedInt64(obj, fields...)
}

const testTimeout = 60 * time.Second

var cmpIgnoreMessage = cmpopts.IgnoreFields(Conflict{}, "Message")
