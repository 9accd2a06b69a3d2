package plugin

import (
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/kamal-operator/kamal-operator/internal/servertarget"
)

// explain turns an error into what the user reads: a refused read says which object, which
// verb and what access the command needs.
func explain(err error) string {
	var key *servertarget.KeyError
	if errors.As(err, &key) && apierrors.IsForbidden(key.Err) {
		return fmt.Sprintf("you may not read Secret %s/%s, the SSH key of the Server (%s): %s\n"+
			"kubectl kamal connects to hosts with the Server's own key, so it needs \"get\" on that Secret: "+
			"that amounts to root on the host, and is meant for the team that owns the Servers. "+
			"Ask them for a Role granting get on secrets/%s in namespace %s.",
			key.Namespace, key.Name, key.Field, forbiddenDetail(key.Err), key.Name, key.Namespace)
	}
	if apierrors.IsForbidden(err) {
		return "access refused: " + forbiddenDetail(err)
	}
	return err.Error()
}

// forbiddenDetail is the API server's own sentence, which names the user, verb, resource and
// namespace.
func forbiddenDetail(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Message != "" {
		return status.Status().Message
	}
	return err.Error()
}
