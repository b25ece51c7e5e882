# One ECS service on Fargate whose every task runs the app with the outrigger sidecar beside it:
#
#   outrigger-config  (not essential) writes the rendered config from SSM to a shared volume, exits 0
#   outrigger         (essential) `outrigger run --config /etc/outrigger/outrigger.yaml`
#                     inbound 0.0.0.0:15000 (mTLS) -> app 127.0.0.1:8080
#                     outbound 127.0.0.1:15001, called by the app as http://<service-name>/
#                     admin 9901: GET /ready (200 ready, 503 draining), /metrics
#                     health check on /ready; stopTimeout long enough to drain on SIGTERM
#   app               (essential) starts only once outrigger is HEALTHY
#
# ECS stops containers in reverse dependency order, so at shutdown the app gets SIGTERM first and
# outrigger last; the load balancers have deregistered the task (and /ready went 503) before that.

data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  region                = data.aws_region.current.region
  outrigger_config_dir  = "/etc/outrigger"
  outrigger_config_path = "/etc/outrigger/outrigger.yaml"
  inbound_port          = 15000
  outbound_port         = 15001
  admin_port            = 9901
  app_port              = 8080
  lattice_enabled       = var.enable_lattice

  app_environment = merge(
    {
      # The app reaches other services through the sidecar: http://<service-name>/ with this proxy.
      HTTP_PROXY      = "http://127.0.0.1:${local.outbound_port}"
      OUTRIGGER_ADMIN = "http://127.0.0.1:${local.admin_port}"
      PORT            = tostring(local.app_port)
      BIND_ADDRESS    = "127.0.0.1"
      NO_PROXY        = "127.0.0.1,localhost,169.254.170.2"
    },
    var.app_environment,
  )

  containers = [
    {
      name       = "outrigger-config"
      image      = var.outrigger_image
      essential  = false
      entryPoint = ["/bin/sh", "-c"]
      command    = ["umask 022 && printf '%s' \"$OUTRIGGER_CONFIG\" > /etc/outrigger/outrigger.yaml"]
      secrets = [
        { name = "OUTRIGGER_CONFIG", valueFrom = aws_ssm_parameter.config.arn },
      ]
      mountPoints = [
        { sourceVolume = "outrigger-config", containerPath = local.outrigger_config_dir, readOnly = false },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.task.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "outrigger-config"
        }
      }
    },
    {
      name                   = "outrigger"
      image                  = var.outrigger_image
      essential              = true
      cpu                    = var.sidecar_cpu
      memoryReservation      = var.sidecar_memory
      entryPoint             = ["/usr/local/bin/outrigger"]
      command                = ["run", "--config", local.outrigger_config_path]
      readonlyRootFilesystem = true
      stopTimeout            = var.stop_timeout_seconds
      portMappings = [
        { name = "inbound", containerPort = local.inbound_port, protocol = "tcp", appProtocol = "http" },
        { name = "admin", containerPort = local.admin_port, protocol = "tcp", appProtocol = "http" },
      ]
      healthCheck = {
        command     = ["CMD", "/usr/local/bin/outrigger", "probe", "http://127.0.0.1:${local.admin_port}/ready"]
        interval    = 10
        timeout     = 5
        retries     = 3
        startPeriod = 15
      }
      dependsOn = [
        { containerName = "outrigger-config", condition = "SUCCESS" },
      ]
      mountPoints = [
        { sourceVolume = "outrigger-config", containerPath = local.outrigger_config_dir, readOnly = true },
      ]
      ulimits = [
        { name = "nofile", softLimit = 65536, hardLimit = 65536 },
      ]
      environment = [
        { name = "OUTRIGGER_SERVICE", value = var.name },
        { name = "OUTRIGGER_ISSUING_CA_ARN", value = var.issuing_ca_arn },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.task.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "outrigger"
        }
      }
    },
    {
      name        = var.app_name
      image       = var.app_image
      essential   = true
      cpu         = var.task_cpu - var.sidecar_cpu
      stopTimeout = 30
      environment = [for k, v in local.app_environment : { name = k, value = v }]
      dependsOn = [
        { containerName = "outrigger", condition = "HEALTHY" },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.task.name
          awslogs-region        = local.region
          awslogs-stream-prefix = var.app_name
        }
      }
    },
  ]
}

resource "aws_cloudwatch_log_group" "task" {
  name              = "/outrigger/ecs/${var.name}"
  retention_in_days = var.log_retention_days

  tags = var.tags
}

resource "aws_ssm_parameter" "config" {
  name        = "/outrigger/${var.name}/outrigger.yaml"
  description = "outrigger sidecar configuration for ${var.name}"
  type        = "String"
  tier        = "Intelligent-Tiering"
  value       = var.outrigger_config_yaml

  tags = var.tags
}

# --- IAM ---------------------------------------------------------------------------------------

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "ReadSidecarConfig"
    actions   = ["ssm:GetParameters"]
    resources = [aws_ssm_parameter.config.arn]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "sidecar-config"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "task" {
  statement {
    sid       = "SidecarIdentity"
    actions   = ["acm-pca:IssueCertificate", "acm-pca:GetCertificate", "acm-pca:GetCertificateAuthorityCertificate"]
    resources = [var.issuing_ca_arn]
  }

  dynamic "statement" {
    for_each = length(var.lattice_invoke_arns) > 0 ? [1] : []

    content {
      sid       = "LatticeInvoke"
      actions   = ["vpc-lattice-svcs:Invoke"]
      resources = [for a in var.lattice_invoke_arns : "${a}/*"]
    }
  }

  dynamic "statement" {
    for_each = length(var.execute_api_invoke_arns) > 0 ? [1] : []

    content {
      sid       = "ExecuteApiInvoke"
      actions   = ["execute-api:Invoke"]
      resources = var.execute_api_invoke_arns
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "sidecar"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# ECS registers the tasks in the Lattice target group with this role.
data "aws_iam_policy_document" "ecs_infrastructure_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "lattice_infrastructure" {
  count = local.lattice_enabled ? 1 : 0

  name               = "${var.name}-ecs-lattice"
  assume_role_policy = data.aws_iam_policy_document.ecs_infrastructure_assume.json

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "lattice_infrastructure" {
  count = local.lattice_enabled ? 1 : 0

  role       = aws_iam_role.lattice_infrastructure[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonECSInfrastructureRolePolicyForVpcLattice"
}

# --- Network -----------------------------------------------------------------------------------

data "aws_ec2_managed_prefix_list" "lattice" {
  count = local.lattice_enabled ? 1 : 0

  name = "com.amazonaws.${local.region}.vpc-lattice"
}

resource "aws_security_group" "task" {
  name        = "${var.name}-task"
  description = "outrigger sidecar: inbound 15000 and admin 9901 from the load balancers"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-task" })
}

resource "aws_vpc_security_group_ingress_rule" "inbound" {
  for_each = toset(var.inbound_cidr_blocks)

  security_group_id = aws_security_group.task.id
  description       = "outrigger inbound (mTLS) from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = local.inbound_port
  to_port           = local.inbound_port
  cidr_ipv4         = each.value

  tags = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "admin" {
  for_each = toset(var.inbound_cidr_blocks)

  security_group_id = aws_security_group.task.id
  description       = "outrigger /ready health checks from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = local.admin_port
  to_port           = local.admin_port
  cidr_ipv4         = each.value

  tags = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "lattice" {
  for_each = local.lattice_enabled ? toset([tostring(local.inbound_port), tostring(local.admin_port)]) : toset([])

  security_group_id = aws_security_group.task.id
  description       = "VPC Lattice to outrigger port ${each.value}"
  ip_protocol       = "tcp"
  from_port         = tonumber(each.value)
  to_port           = tonumber(each.value)
  prefix_list_id    = data.aws_ec2_managed_prefix_list.lattice[0].id

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.task.id
  description       = "Upstreams: endpoints, Lattice, AWS APIs (through the hub's NAT and shared endpoints)"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"

  tags = var.tags
}

# --- Task definition and service -----------------------------------------------------------------

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  container_definitions    = jsonencode(local.containers)

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "outrigger-config"
  }

  tags = var.tags
}

resource "aws_ecs_service" "this" {
  name                               = var.name
  cluster                            = var.cluster_arn
  task_definition                    = aws_ecs_task_definition.this.arn
  desired_count                      = var.desired_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  propagate_tags                     = "SERVICE"
  enable_execute_command             = false
  health_check_grace_period_seconds  = length(var.nlb_target_group_arns) > 0 ? 30 : null
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.task.id]
    assign_public_ip = false
  }

  dynamic "load_balancer" {
    for_each = toset(var.nlb_target_group_arns)

    content {
      target_group_arn = load_balancer.value
      container_name   = "outrigger"
      container_port   = local.inbound_port
    }
  }

  dynamic "vpc_lattice_configurations" {
    for_each = local.lattice_enabled ? [var.lattice_target_group_arn] : []

    content {
      target_group_arn = vpc_lattice_configurations.value
      port_name        = "inbound"
      role_arn         = aws_iam_role.lattice_infrastructure[0].arn
    }
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy_attachment.lattice_infrastructure]
}
