{{- define "spore.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "spore.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "spore.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "spore.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "spore.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "spore.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "spore.agentImage" -}}
{{- printf "%s:%s" .Values.agentImage.repository (default .Chart.AppVersion .Values.agentImage.tag) -}}
{{- end -}}

{{- define "spore.trainingImage" -}}
{{- printf "%s:%s" .Values.trainingImage.repository (default .Chart.AppVersion .Values.trainingImage.tag) -}}
{{- end -}}

{{/*
The rules of the namespaced resources the operator works with: granted cluster-wide, or, with
watchNamespace, by a Role in that namespace only.
*/}}
{{- define "spore.namespacedRules" }}
  # The custom resources it reconciles.
  - apiGroups: ["sporemesh.io"]
    resources: ["sporenodes", "experiments"]
    verbs: ["get", "list", "watch", "patch", "update"]
  # Granted on to the node-agents of SporeNodes with research on (their loops' runs are
  # Experiments): a Role can grant only what its author holds.
  - apiGroups: ["sporemesh.io"]
    resources: ["experiments"]
    verbs: ["create"]
  - apiGroups: ["sporemesh.io"]
    resources: ["sporenodes/status", "experiments/status"]
    verbs: ["get", "patch", "update"]
  - apiGroups: ["sporemesh.io"]
    resources: ["sporenodes/finalizers", "experiments/finalizers"]
    verbs: ["update"]
  # Training pods (one per Experiment) and the nodes' identity Secrets and configs.
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["get", "list", "watch", "create", "delete"]
  - apiGroups: [""]
    resources: ["configmaps", "secrets", "services"]
    verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
  # Node-agents.
  - apiGroups: ["apps"]
    resources: ["statefulsets"]
    verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
  # Each node-agent's own ServiceAccount, bound to a Role that lets it read its Experiments and
  # their code and write their status (granting it needs the same rights above).
  - apiGroups: [""]
    resources: ["serviceaccounts"]
    verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
  - apiGroups: ["rbac.authorization.k8s.io"]
    resources: ["roles", "rolebindings"]
    verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
  # Default-deny egress for training pods.
  - apiGroups: ["networking.k8s.io"]
    resources: ["networkpolicies"]
    verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
  # Events on transitions.
  - apiGroups: ["events.k8s.io"]
    resources: ["events"]
    verbs: ["create", "patch"]
{{- end }}
