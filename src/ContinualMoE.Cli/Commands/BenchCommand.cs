using System.CommandLine;
using ContinualMoE.Backbones;
using ContinualMoE.Benchmarks;
using Spectre.Console;

namespace ContinualMoE.Cli.Commands;

/// <summary><c>continual-moe bench backbone</c>: throughput of a ViT config against this machine's matmul speed.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config") { Description = "backbone config name", DefaultValueFactory = _ => "vit_micro_patch4_32" };
        var batch = new Option<int>("--batch-size") { Description = "images per batch", DefaultValueFactory = _ => 64 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var threads = new Option<int>("--threads") { Description = "intra-op threads (0: libtorch default, one per core)", DefaultValueFactory = _ => 0 };
        var precision = new Option<string>("--precision") { Description = "fp32, bf16 or both", DefaultValueFactory = _ => "both" };
        var seconds = new Option<double>("--seconds") { Description = "seconds per measurement", DefaultValueFactory = _ => 3.0 };

        var backbone = new Command("backbone", "forward and forward+backward images/s, GFLOP/s and the ratio to measured matmul GFLOP/s")
        {
            config, batch, device, threads, precision, seconds,
        };
        backbone.SetAction(parse =>
        {
            var vit = VitRegistry.Get(parse.GetValue(config)!);
            var dev = ComputeDevice.Parse(parse.GetValue(device)!);
            var modes = parse.GetValue(precision) switch
            {
                "fp32" => new[] { false },
                "bf16" => [true],
                "both" => [false, true],
                var other => throw new ContinualMoEException($"unknown precision '{other}': use fp32, bf16 or both"),
            };
            var table = new Table().AddColumns("config", "batch", "threads", "precision", "fwd img/s", "fwd+bwd img/s",
                "GFLOP/img", "fwd GFLOP/s", "train GFLOP/s", "matmul GFLOP/s", "fwd / matmul");
            foreach (var bf16 in modes)
            {
                var r = BackboneBenchmark.Run(vit, parse.GetValue(batch), dev, bf16, parse.GetValue(seconds), parse.GetValue(threads));
                table.AddRow(r.Config, r.BatchSize.ToString(), r.Threads.ToString(), r.Precision, $"{r.ForwardImagesPerSecond:F1}",
                    $"{r.ForwardBackwardImagesPerSecond:F1}", $"{r.ForwardGflopsPerImage:F3}", $"{r.ForwardAchievedGflops:F1}",
                    $"{r.TrainAchievedGflops:F1}", $"{r.MatmulGflops:F1}", $"{r.ForwardFractionOfMatmul:P0}");
            }
            AnsiConsole.Write(table);
            return 0;
        });
        var bench = new Command("bench", "speed measurements");
        bench.Subcommands.Add(backbone);
        bench.Subcommands.Add(LanguageModelBenchCommand.Create());
        bench.Subcommands.Add(EndToEndBenchCommand.Create());
        return bench;
    }
}
