// The explorer's JSON API (documented at /api/openapi.json).

export type Status = "keep" | "discard" | "crash";

/** A record as the API returns it: the signed fields plus the store's facts. */
export interface Experiment {
  id: string;
  parent: string | null;
  depth: number;
  status: Status;
  val_bpb: number;
  gpu_model: string;
  node_id: string;
  timestamp: number;
  description: string;
  on_frontier: boolean;
  children: number;
  orphan: boolean;
  diff?: string;
  hypothesis?: string;
  code_cid?: string;
  dataset_cid?: string;
  time_budget?: number;
  peak_vram_mb?: number;
  num_steps?: number;
  num_params?: number;
  agent_model?: string;
  cuda_version?: string;
  torch_version?: string;
  verified?: boolean;
  verification?: Verification;
  measured_by?: "evaluator" | "train.py" | null;
}

export interface Verification {
  verified: boolean;
  verifications: number;
  challenges: number;
  challenge_responses: number;
  disputes: number;
  rejected: boolean;
  ground_truth: number | null;
}

export interface Graph {
  node: Experiment[];
  edge: { source: string; target: string }[];
  frontier_id: string[];
  mode: "full" | "lineage";
  next_offset: number | null;
  truncated: boolean;
  total: number;
}

export interface Stat {
  experiment_count: number;
  frontier_size: number;
  best_val_bpb: number | null;
  peer_count: number;
  node_id: string | null;
  keep: number;
  discard: number;
  crash: number;
  rejected: number;
}

export interface FrontierClass {
  class: string;
  size: number;
  gpu_models: string[];
  best_id: string | null;
  best_val_bpb: number | null;
}

export interface LeaderboardRow {
  node_id: string;
  score: number;
  experiments_published: number;
  experiments_verified: number;
  verifications_performed: number;
  disputes_won: number;
  disputes_lost: number;
}

export interface NoiseSetting {
  gpu_class: string;
  prepare_cid: string;
  time_budget: number;
  dof: number;
  sigma: number | null;
  runs: number | null;
  updated: number | null;
  margin: number | null;
}

export interface Noise {
  rule: string;
  keep_margin: number | null;
  settings: NoiseSetting[];
}

export interface Task {
  task_id: string;
  name: string;
  source: "manifest" | "legacy";
  frontier_size: number;
  best_val_bpb: number | null;
}

export interface ProgressSeries {
  class: string;
  points: { timestamp: number; val_bpb: number; id: string }[];
}

async function get<T>(path: string): Promise<T> {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return (await response.json()) as T;
}

const q = encodeURIComponent;

export const api = {
  stat: () => get<Stat>("/api/stat"),
  graph: (mode: "full" | "lineage", offset = 0) =>
    get<Graph>(`/api/graph?mode=${mode}&fields=summary&offset=${offset}&limit=5000`),
  frontier: (gpuClass: string, task: string) =>
    get<Experiment[]>(`/api/frontier?limit=100${gpuClass ? `&class=${q(gpuClass)}` : ""}${task ? `&task=${q(task)}` : ""}`),
  tasks: () => get<Task[]>("/api/task"),
  frontierClasses: () => get<FrontierClass[]>("/api/frontier/classes"),
  experiment: (id: string) => get<Experiment>(`/api/experiment/${q(id)}`),
  ancestors: (id: string) => get<Experiment[]>(`/api/experiment/${q(id)}/ancestor`),
  children: (id: string) => get<Experiment[]>(`/api/experiment/${q(id)}/children`),
  recent: (limit: number) => get<Experiment[]>(`/api/recent?limit=${limit}`),
  search: (text: string) => get<Experiment[]>(`/api/search?q=${q(text)}`),
  leaderboard: () => get<LeaderboardRow[]>("/api/leaderboard"),
  progress: () => get<ProgressSeries[]>("/api/progress"),
  noise: () => get<Noise>("/api/noise"),
  artifact: (cid: string) => get<{ cid: string; content: string }>(`/api/artifact/${q(cid)}`),
};

export function isCid(text: string): boolean {
  return /^[0-9a-f]{64}$/.test(text);
}
