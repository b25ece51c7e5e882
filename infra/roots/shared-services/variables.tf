variable "member_account_ids" {
  description = "Provider and consumer accounts: they pull images and issue certificates from the subordinate CA."
  type        = list(string)
}

variable "app_repositories" {
  description = "ECR repositories of the apps' images (the outrigger repository is always created)."
  type        = list(string)
  default     = []
}
