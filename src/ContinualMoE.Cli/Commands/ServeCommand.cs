using Microsoft.Extensions.Hosting;
using System.CommandLine;
using ContinualMoE.Cli.Service;
using ContinualMoE.Deployment;
using Spectre.Console;

namespace ContinualMoE.Cli.Commands;

/// <summary><c>continual-moe serve</c>: the model service and its web page (<see cref="ModelService"/>).</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "model package folder", Required = true };
        var port = new Option<int>("--port") { Description = "TCP port", DefaultValueFactory = _ => 5000 };
        var host = new Option<string>("--host") { Description = "address to listen on (0.0.0.0 for every interface)", DefaultValueFactory = _ => "127.0.0.1" };
        var roots = new Option<string[]>("--data-root") { Description = "folder whose subfolders POST /tasks may learn from (repeatable)", AllowMultipleArgumentsPerToken = true };
        var token = new Option<string?>("--token") { Description = "require 'Authorization: Bearer <token>' (default: $CMOE_TOKEN, else no token)" };
        var maxMb = new Option<int>("--max-request-mb") { Description = "largest request body", DefaultValueFactory = _ => 64 };
        var batch = new Option<int>("--max-batch") { Description = "most images the inference queue merges into one batch", DefaultValueFactory = _ => 64 };
        var delay = new Option<double>("--max-batch-delay-ms") { Description = "under concurrent load, how long a batch may wait for more requests (0: never)", DefaultValueFactory = _ => 10 };
        var workers = new Option<int>("--workers")
        {
            Description = "model replicas predicting batches in parallel, each with its share of the libtorch threads (each holds a copy of the model)",
            DefaultValueFactory = _ => 1,
        };
        var command = new Command("serve", "serve a model package over HTTP: predictions, learning jobs, a web page") { model, port, host, roots, token, maxMb, batch, delay, workers };
        command.SetAction(async (parse, cancellation) =>
        {
            ComputeDevice.ConfigureThreads();
            var folder = parse.GetValue(model)!;
            var deployed = DeployedModel.Load(folder);
            var options = new ServiceOptions(folder, parse.GetValue(roots) ?? [], parse.GetValue(token) ?? Environment.GetEnvironmentVariable("CMOE_TOKEN"),
                MaxRequestBytes: (long)parse.GetValue(maxMb) << 20, Urls: $"http://{parse.GetValue(host)}:{parse.GetValue(port)}",
                MaxBatchImages: Math.Max(1, parse.GetValue(batch)), MaxBatchDelayMilliseconds: Math.Max(0, parse.GetValue(delay)), Workers: parse.GetValue(workers));
            await using var app = ModelService.Build(options, deployed);
            AnsiConsole.MarkupLine($"Serving [bold]{Markup.Escape(folder)}[/] version {deployed.Manifest.Version} on {Markup.Escape(options.Urls)} (web page /, OpenAPI /openapi/v1.json); Ctrl+C stops.");
            await app.StartAsync(cancellation);
            await app.WaitForShutdownAsync(cancellation);
            return 0;
        });
        return command;
    }
}
