{{/*
The storefront's browser side: the secret that signs its forms' CSRF tokens, and whether its
cookies are Secure. Rendered for a chart whose values have `csrf:` (the storefront's).

The CSRF secret must be the same on every replica (a token signed by one pod is checked by
another), so it lives in a Secret, key csrf-secret, read as CSRF_SECRET: csrf.existingSecret names
one you manage; otherwise "<release>-storefront-csrf" is generated once, on install, and kept by
every upgrade and uninstall (checkout-lib.generatedSecret). The operator makes its own and names it.
*/}}

{{- define "checkout-lib.csrf.secretName" -}}
{{- .Values.csrf.existingSecret | default (printf "%s-csrf" (include "checkout-lib.fullname" .)) }}
{{- end }}

{{- define "checkout-lib.csrf.secretKey" -}}
csrf-secret
{{- end }}

{{- define "checkout-lib.csrf.secret" -}}
{{- if not .Values.csrf.existingSecret }}
{{- $labels := include "checkout-lib.labels" (dict "ctx" . "component" "csrf") }}
{{- $data := dict (include "checkout-lib.csrf.secretKey" .) (randAlphaNum 48) }}
{{- include "checkout-lib.generatedSecret" (dict "ctx" . "name" (include "checkout-lib.csrf.secretName" .) "labels" $labels "data" $data) }}
{{- end }}
{{- end }}

{{/*
COOKIE_SECURE: "true" when the shop is served over TLS, so the browser sends its cookies (the
shopper's token among them) over https only. That is this chart's own Ingress with
ingress.tls.enabled (a chart installed on its own, or by the operator), or global.tls, which the
umbrella chart's values set with its Ingress's TLS (or for TLS ended before the ingress).
*/}}
{{- define "checkout-lib.cookieSecure" -}}
{{- if or .Values.ingress.tls.enabled (include "checkout-lib.global" (dict "ctx" . "path" (list "tls"))) }}true{{ else }}false{{ end }}
{{- end }}
