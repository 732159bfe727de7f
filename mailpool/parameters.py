"""The deployment template's parameters, and the rules CloudFormation holds them to before
it creates anything."""

from typing import Any

#: What a stack with services cannot do without (CloudFormation refuses it before creating).
RULES: dict[str, Any] = {
    "ServicesNeedTlsAndKeys": {
        "RuleCondition": {"Fn::Not": [{"Fn::Equals": [{"Ref": "ImageUri"}, ""]}]},
        "Assertions": [
            {
                "Assert": {"Fn::Not": [{"Fn::Equals": [{"Ref": "CertificateArn"}, ""]}]},
                "AssertDescription": "the intake's HTTPS listener needs CertificateArn",
            },
            {
                "Assert": {"Fn::Not": [{"Fn::Equals": [{"Ref": "ApiKeyDigests"}, ""]}]},
                "AssertDescription": "intake needs ApiKeyDigests (mailpool keys new)",
            },
        ],
    }
}


def parameters(scheme: str, certificate_arn: str, worker: str = "ecs") -> dict[str, Any]:
    """The template's parameters; the load balancer's ``scheme`` and the certificate the
    template was rendered with set the defaults of ``ClientCidr`` and ``CertificateArn``;
    the Lambda worker adds where its code is and its reserved concurrency."""
    public = scheme == "internet-facing"
    found = {
        **(_LAMBDA if worker == "lambda" else {}),
        "ImageUri": {
            "Type": "String",
            "Default": "",
            "Description": "A mailpool container image; empty: no ECS services (run the "
            "processes yourself with the Environment output and the roles)",
        },
        "VpcId": {"Type": "String", "Default": "", "Description": "The VPC of the services"},
        "SubnetIds": {
            "Type": "CommaDelimitedList",
            "Default": "",
            "Description": "At least two subnets in different zones, for the load balancer "
            "and tasks",
        },
        "CertificateArn": {
            "Type": "String",
            "Default": certificate_arn,
            "Description": "The ACM certificate of the intake's HTTPS listener (needed with "
            "ImageUri)",
        },
        "ClientCidr": {
            "Type": "String",
            "Default": "0.0.0.0/0" if public else "10.0.0.0/8",
            "Description": f"Who may reach the {scheme} load balancer's HTTPS port",
        },
        "AssignPublicIp": {
            "Type": "String",
            "Default": "DISABLED",
            "AllowedValues": ["DISABLED", "ENABLED"],
            "Description": "Public IPs for the tasks (only in public subnets without a NAT "
            "gateway or VPC endpoints)",
        },
        "ApiKeyDigests": {
            "Type": "String",
            "Default": "",
            "NoEcho": True,
            "Description": "The API keys intake admits, as name:sha256-hex lines of `mailpool "
            "keys new` joined by commas (stored in Secrets Manager; needed with ImageUri)",
        },
        "WebhookUrl": {
            "Type": "String",
            "Default": "",
            "Description": "MAILPOOL_WEBHOOK_URL: where the webhooks task delivers events "
            "(empty: no webhooks task; docs/events.md tells of several endpoints)",
        },
        "WebhookSecret": {
            "Type": "String",
            "Default": "",
            "NoEcho": True,
            "Description": "MAILPOOL_WEBHOOK_SECRET (whsec_...) for WebhookUrl (stored in "
            "Secrets Manager)",
        },
        "MinSenders": {"Type": "Number", "Default": 1, "MinValue": 1},
        "MaxSenders": {"Type": "Number", "Default": 20, "MinValue": 1},
        "MinIntakes": {"Type": "Number", "Default": 2, "MinValue": 1},
        "MaxIntakes": {"Type": "Number", "Default": 10, "MinValue": 1},
    }
    if worker == "lambda":  # no sender tasks to scale
        del found["MinSenders"], found["MaxSenders"]
    return found


_LAMBDA: dict[str, Any] = {
    "LambdaCodeBucket": {
        "Type": "String",
        "Default": "",
        "Description": "The bucket holding the Lambda worker's package (mailpool deploy package)",
    },
    "LambdaCodeKey": {
        "Type": "String",
        "Default": "",
        "Description": "The package's key in LambdaCodeBucket; empty: no function (yet)",
    },
    "LambdaReservedConcurrency": {
        "Type": "Number",
        "Default": 100,
        "MinValue": 1,
        "Description": "Concurrent executions reserved for (and capping) the Lambda worker",
    },
}
