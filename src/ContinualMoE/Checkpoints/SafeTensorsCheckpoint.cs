using System.Text.Json;
using static TorchSharp.torch;

namespace ContinualMoE.Checkpoints;

/// <summary>
/// The safetensors weights of a Hugging Face model folder: one <c>model.safetensors</c>, or shards listed by
/// <c>model.safetensors.index.json</c> ({"weight_map": {tensor name: shard file}}). Only headers are read on opening,
/// so sizes and names can be checked before any weight is loaded.
/// </summary>
public sealed class SafeTensorsCheckpoint
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    /// <summary>Every tensor with the file that holds it, in file order.</summary>
    public IReadOnlyList<(string File, SafeTensorsEntry Entry)> Tensors { get; }
    public IReadOnlyList<string> Files { get; }
    /// <summary>What was found, e.g. "2 safetensors shards (model.safetensors.index.json)".</summary>
    public string Description { get; }

    private SafeTensorsCheckpoint(List<(string, SafeTensorsEntry)> tensors, List<string> files, string description)
    {
        Tensors = tensors;
        Files = files;
        Description = description;
    }

    /// <summary>Finds and checks the weights of <paramref name="folder"/>; one-line errors name the file at fault.</summary>
    public static SafeTensorsCheckpoint Open(string folder)
    {
        var index = Path.Combine(folder, IndexFileName);
        if (File.Exists(index)) return OpenSharded(folder, index);
        var single = Path.Combine(folder, SingleFileName);
        if (File.Exists(single))
        {
            var entries = SafeTensorsFile.ReadEntries(single).Select(e => (single, e)).ToList();
            return new SafeTensorsCheckpoint(entries, [single], $"one safetensors file ({SingleFileName})");
        }
        var found = Directory.Exists(folder) ? Directory.GetFiles(folder).Select(Path.GetFileName).OrderBy(n => n).ToList() : null;
        if (found is null) throw ContinualMoEException.ForFile(folder, "model folder not found");
        var hint = found.Any(n => n!.EndsWith(".bin") || n!.EndsWith(".pth") || n!.EndsWith(".pt"))
            ? "; PyTorch pickle weights (.bin/.pth) are not supported, convert them to safetensors" : "";
        throw ContinualMoEException.ForFile(folder, $"no {SingleFileName} or {IndexFileName} in the model folder{hint}");
    }

    private static SafeTensorsCheckpoint OpenSharded(string folder, string indexPath)
    {
        Dictionary<string, string> weightMap;
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(indexPath));
            if (!document.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw ContinualMoEException.ForFile(indexPath, "no \"weight_map\" object");
            weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var item in map.EnumerateObject())
            {
                if (item.Value.ValueKind != JsonValueKind.String)
                    throw ContinualMoEException.ForFile(indexPath, $"weight_map entry '{item.Name}' is not a file name");
                weightMap[item.Name] = item.Value.GetString()!;
            }
        }
        catch (JsonException e)
        {
            throw ContinualMoEException.ForFile(indexPath, $"not valid JSON: {e.Message}", e);
        }

        var shardNames = weightMap.Values.Distinct().OrderBy(n => n, StringComparer.Ordinal).ToList();
        var tensors = new List<(string, SafeTensorsEntry)>();
        var files = new List<string>();
        foreach (var shardName in shardNames)
        {
            if (Path.IsPathRooted(shardName) || shardName.Contains(".."))
                throw ContinualMoEException.ForFile(indexPath, $"shard name '{shardName}' must be a file inside the model folder");
            var shard = Path.Combine(folder, shardName);
            if (!File.Exists(shard))
                throw ContinualMoEException.ForFile(shard, $"shard listed in {IndexFileName} is missing");
            files.Add(shard);
            var listed = weightMap.Where(p => p.Value == shardName).Select(p => p.Key).ToHashSet(StringComparer.Ordinal);
            foreach (var entry in SafeTensorsFile.ReadEntries(shard))
            {
                // Tensors the index does not assign to this shard are ignored, as transformers does.
                if (listed.Remove(entry.Name)) tensors.Add((shard, entry));
            }
            if (listed.Count > 0)
                throw ContinualMoEException.ForFile(shard,
                    $"{IndexFileName} places {listed.Count} tensors in this shard that it does not contain, e.g. '{listed.Order(StringComparer.Ordinal).First()}'");
        }
        return new SafeTensorsCheckpoint(tensors, files, $"{files.Count} safetensors shards ({IndexFileName})");
    }

    /// <summary>Bytes the tensors take once converted to <paramref name="dtype"/> (float tensors only; others as stored).</summary>
    public long BytesAs(ScalarType dtype)
    {
        var size = dtype switch { ScalarType.Float32 => 4, ScalarType.Float64 => 8, _ => 2 };
        return Tensors.Sum(t => t.Entry.Type is ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float64
            ? t.Entry.Shape.Aggregate(1L, (a, d) => a * d) * size
            : t.Entry.ByteSize);
    }

    /// <summary>Stored dtypes and how many tensors have each, e.g. "BF16 x 26".</summary>
    public string DescribeDTypes() =>
        string.Join(", ", Tensors.GroupBy(t => t.Entry.Type).Select(g => $"{g.Key} x {g.Count()}"));
}
