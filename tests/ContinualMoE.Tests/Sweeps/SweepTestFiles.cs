using System.Diagnostics;
using System.Text.Json.Nodes;
using ContinualMoE.Cli.Sweeps;

namespace ContinualMoE.Tests.Sweeps;

/// <summary>Tiny sweeps (random-init nano ViT, 4 generated classes, 2 tasks, 1 epoch) and a temporary folder.</summary>
internal sealed class SweepTestFiles : IDisposable
{
    public string Root { get; } = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "cmoe-sweep-" + Guid.NewGuid().ToString("N"))).FullName;

    public static JsonObject TinyBase(int tasks = 2, int trainPerClass = 16) => new()
    {
        ["backbone"] = "vit_nano_patch4_32", ["backbone_weights"] = null, ["tasks"] = tasks, ["epochs"] = 1,
        ["generated_classes"] = 4, ["generated_train_per_class"] = trainPerClass, ["generated_test_per_class"] = 8,
    };

    /// <summary>Writes a spec file and returns its path.</summary>
    public string Spec(string name, JsonObject spec)
    {
        var path = Path.Combine(Root, name + ".json");
        File.WriteAllText(path, spec.ToJsonString());
        return path;
    }

    public string Folder(string name) => Path.Combine(Root, name);

    public static IReadOnlyList<JsonObject> Attempts(string sweepFolder) =>
        File.Exists(Path.Combine(sweepFolder, "attempts.jsonl"))
            ? File.ReadAllLines(Path.Combine(sweepFolder, "attempts.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList()
            : [];

    public static string StartInfoName() => SelfCommand.Resolve().FileName;
    public static IReadOnlyList<string> CliPrefix() => SelfCommand.Resolve().Prefix;

    /// <summary>Runs a program to its end; returns its exit code and output.</summary>
    public static (int Code, string Output) Run(string fileName, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null, int timeoutSeconds = 300)
    {
        var info = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments) info.ArgumentList.Add(argument);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) info.Environment[key] = value;
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(timeoutSeconds)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{fileName} {string.Join(' ', arguments)} did not finish in {timeoutSeconds} s");
        }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); }
        catch (IOException) { }
    }
}
