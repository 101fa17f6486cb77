{{- define "checkout-operator.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "checkout-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "checkout-operator.labels" -}}
{{ include "checkout-operator.selectorLabels" . }}
app.kubernetes.io/part-of: checkout-platform
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "checkout-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "checkout-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "checkout-operator.image" -}}
{{- $tag := .image.tag | default .ctx.Chart.AppVersion | toString }}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/*
What the operator may do with the objects it renders from the service charts and owns. Shared by
the ClusterRole (all namespaces) and the per-namespace Roles.
*/}}
{{- define "checkout-operator.namespacedRules" -}}
# Exactly what the operator calls (tests/operator/test_rbac.py runs it as this ServiceAccount and
# compares its requests in the API server's audit log with these rules). Children are written by
# server-side apply: a patch, which needs create as well when the object is new.
- apiGroups: ["checkout.platform.io"]
  resources: ["checkouts"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["checkout.platform.io"]
  resources: ["checkouts/status"]
  verbs: ["patch"]
# A CheckoutBackup asks for a backup now (kopf keeps its progress in annotations: patch).
- apiGroups: ["checkout.platform.io"]
  resources: ["checkoutbackups"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["checkout.platform.io"]
  resources: ["checkoutbackups/status"]
  verbs: ["patch"]
# Owner references with blockOwnerDeletion need update on the owner's finalizers (checked by the
# OwnerReferencesPermissionEnforcement admission plugin where it runs; no request of its own).
- apiGroups: ["checkout.platform.io"]
  resources: ["checkouts/finalizers"]
  verbs: ["update"]
# Children are listed by the owner label, never read one by one; the keyring Secrets are also read
# by name (a rotation, and a Secret missing from the list before the operator makes it).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["configmaps", "services", "serviceaccounts"]
  verbs: ["list", "create", "patch", "delete"]
# Volumes are listed and, when keepDataOnDelete is false, deleted; the backup archives' claim is
# created when missing (and never deleted: it outlives the Checkout).
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["list", "create", "delete"]
# A rotation lists the service pods to ask each for the keys it has loaded.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# Deployments and StatefulSets are watched too: their status is the Checkout's conditions.
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# The backup CronJob of a Checkout with spec.backup (read by name to start a CheckoutBackup's Job
# from its template); the backup and restore Jobs are watched for their outcome, which their pods
# report; the restore Job is made by the operator and deleted once it succeeded.
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses", "networkpolicies"]
  verbs: ["list", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}
