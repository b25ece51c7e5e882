variable "name" {
  description = "Service name, used for the ECS service, task family, log group and roles (e.g. outrigger-dev-orders)."
  type        = string
}

variable "cluster_arn" {
  description = "The ECS cluster to run in."
  type        = string
}

variable "vpc_id" {
  description = "The VPC of the tasks."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the tasks, one per AZ."
  type        = list(string)
}

variable "task_cpu" {
  description = "Fargate task CPU units (a valid Fargate size)."
  type        = number
}

variable "task_memory" {
  description = "Fargate task memory (MiB)."
  type        = number
}

variable "sidecar_cpu" {
  description = "CPU units reserved for the outrigger container; the app gets the rest."
  type        = number
  default     = 256
}

variable "sidecar_memory" {
  description = "Memory (MiB) reserved for the outrigger container."
  type        = number
  default     = 512
}

variable "desired_count" {
  description = "How many tasks to run."
  type        = number
}

variable "app_name" {
  description = "The app container's name."
  type        = string
  default     = "app"

  validation {
    condition     = !startswith(var.app_name, "outrigger")
    error_message = "Container names starting with outrigger are the sidecar's."
  }
}

variable "app_image" {
  description = "The app's image (from the shared-services ECR)."
  type        = string
}

variable "app_environment" {
  description = "Extra environment variables for the app container."
  type        = map(string)
  default     = {}
}

variable "outrigger_image" {
  description = "The outrigger sidecar image: <shared-services account>.dkr.ecr.<region>.amazonaws.com/outrigger:<tag>."
  type        = string

  validation {
    condition     = can(regex("/outrigger(:|@)", var.outrigger_image))
    error_message = "outrigger_image must come from the outrigger repository."
  }
}

variable "outrigger_config_yaml" {
  description = "The sidecar's configuration (YAML), rendered by the root from a template; stored in SSM and written to /etc/outrigger/outrigger.yaml at task start."
  type        = string
}

variable "issuing_ca_arn" {
  description = "The shared subordinate Private CA that the sidecar gets its identity certificate from."
  type        = string
}

variable "inbound_cidr_blocks" {
  description = "CIDRs allowed to the sidecar's inbound listener (15000) and admin port (9901), e.g. the VPC (NLB nodes and health checks)."
  type        = list(string)
  default     = []
}

variable "nlb_target_group_arns" {
  description = "NLB target groups (type ip, port 15000) to register the tasks' sidecars in."
  type        = list(string)
  default     = []
}

variable "enable_lattice" {
  description = "Register the tasks in lattice_target_group_arn. A separate flag because the ARN is unknown until apply, and count cannot depend on it."
  type        = bool
  default     = false
}

variable "lattice_target_group_arn" {
  description = "VPC Lattice target group (type IP, port 15000) to register the tasks' sidecars in, when enable_lattice."
  type        = string
  default     = null
}

variable "lattice_invoke_arns" {
  description = "Lattice service ARNs the sidecar may call with SigV4 (vpc-lattice-svcs:Invoke)."
  type        = list(string)
  default     = []
}

variable "execute_api_invoke_arns" {
  description = "API Gateway execute-api ARNs the sidecar may call with SigV4."
  type        = list(string)
  default     = []
}

variable "stop_timeout_seconds" {
  description = "Seconds between SIGTERM and SIGKILL for the sidecar, so that it can drain (Fargate allows up to 120)."
  type        = number
  default     = 90

  validation {
    condition     = var.stop_timeout_seconds >= 60 && var.stop_timeout_seconds <= 120
    error_message = "stop_timeout_seconds must be between 60 and 120."
  }
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64: must match the outrigger and app images."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture is X86_64 or ARM64."
  }
}

variable "log_retention_days" {
  description = "Retention of the task log group."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
