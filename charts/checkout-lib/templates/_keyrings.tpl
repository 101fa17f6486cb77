{{/*
Keyrings: two Secrets, each with one key `keyring.json`, mounted as whole directories (never
subPath, whose files never update) so a rotated keyring reaches running pods without a restart.
*/}}

{{- define "checkout-lib.keyrings.mountDir" -}}
{{- if eq . "jwt" }}/var/run/secrets/checkout/jwt{{ else }}/var/run/secrets/checkout/internal{{ end }}
{{- end }}

{{/*
Name of a keyring Secret. Precedence: this chart's keyrings.<kind>.secretName, then
global.keyrings.<kind>.existingSecret (set by whoever installs the umbrella), then
"<release>-<kind>-keyring", the name the umbrella chart generates.
Call with (dict "ctx" $ "kind" "jwt").
*/}}
{{- define "checkout-lib.keyrings.secretName" -}}
{{- $own := dig .kind "secretName" "" (.ctx.Values.keyrings | default dict) }}
{{- $global := include "checkout-lib.global" (dict "ctx" .ctx "path" (list "keyrings" .kind "existingSecret")) }}
{{- coalesce $own $global (printf "%s-%s-keyring" .ctx.Release.Name .kind) }}
{{- end }}

{{- define "checkout-lib.keyrings.volumes" -}}
{{- range $kind := list "jwt" "internal" }}
- name: {{ $kind }}-keyring
  secret:
    secretName: {{ include "checkout-lib.keyrings.secretName" (dict "ctx" $ "kind" $kind) }}
    defaultMode: 0440
    items:
      - key: keyring.json
        path: keyring.json
{{- end }}
{{- end }}

{{- define "checkout-lib.keyrings.volumeMounts" -}}
{{- range $kind := list "jwt" "internal" }}
- name: {{ $kind }}-keyring
  mountPath: {{ include "checkout-lib.keyrings.mountDir" $kind }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
A keyring.json document with one fresh random key:
{"active": "<kid>", "keys": [{"kid": "<kid>", "secret": "<base64url of 32 random bytes>"}]}
*/}}
{{- define "checkout-lib.keyrings.generate" -}}
{{- $kid := printf "k%s%s" (now | date "20060102") (randAlphaNum 8 | lower) }}
{{- $secret := randBytes 32 | replace "+" "-" | replace "/" "_" | trimSuffix "=" }}
{{- dict "active" $kid "keys" (list (dict "kid" $kid "secret" $secret)) | toJson }}
{{- end }}

{{/*
A Secret whose content is generated once and then kept:
- on install it is rendered with fresh random data, or with the data of a Secret of that name
  that already exists (e.g. kept by helm.sh/resource-policy after an uninstall);
- on upgrade it is rendered only when `lookup` finds it, with exactly the data it has, so an
  upgrade never changes it; `helm template --is-upgrade` (no cluster, `lookup` finds nothing)
  leaves it out, which Helm's keep policy turns into "left alone" rather than "deleted".
Call with (dict "ctx" $ "name" "<secret name>" "labels" <labels yaml> "data" <map of key -> plain value>).
*/}}
{{- define "checkout-lib.generatedSecret" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name }}
{{- if or .ctx.Release.IsInstall $existing }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ .name }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- .labels | nindent 4 }}
  annotations:
    helm.sh/resource-policy: keep
type: Opaque
data:
{{- if and $existing $existing.data }}
  {{- toYaml $existing.data | nindent 2 }}
{{- else }}
{{- range $key, $value := .data }}
  {{ $key }}: {{ $value | b64enc | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
