# The VPC Lattice service network, owned by the networking account and shared through AWS RAM:
# provider accounts associate their services with it, consumer accounts their VPCs. IAM auth is on
# at the network level (only principals of our organization) and again on each service.

resource "aws_vpclattice_service_network" "this" {
  name      = var.name
  auth_type = "AWS_IAM"

  tags = var.tags
}

resource "aws_vpclattice_auth_policy" "this" {
  resource_identifier = aws_vpclattice_service_network.this.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = "*"
      Action    = "vpc-lattice-svcs:Invoke"
      Resource  = "*"
      Condition = {
        StringEquals = { "aws:PrincipalOrgID" = var.organization_id }
      }
    }]
  })
}

resource "aws_ram_resource_share" "this" {
  name                      = "${var.name}-lattice-service-network"
  allow_external_principals = false

  tags = var.tags
}

resource "aws_ram_resource_association" "this" {
  resource_arn       = aws_vpclattice_service_network.this.arn
  resource_share_arn = aws_ram_resource_share.this.arn
}

resource "aws_ram_principal_association" "this" {
  for_each = toset(var.share_principals)

  principal          = each.value
  resource_share_arn = aws_ram_resource_share.this.arn
}
