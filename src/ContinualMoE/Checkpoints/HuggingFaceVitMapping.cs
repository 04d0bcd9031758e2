using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace ContinualMoE.Checkpoints;

/// <summary>
/// Renames a Hugging Face transformers ViT state dict (ViTModel, or ViTForImageClassification with its "vit." prefix)
/// to timm names. The separate query/key/value projections are fused into timm's single qkv Linear, rows q, then k, then v.
/// Keys with no timm counterpart (e.g. the pooler) are kept under their own names so a load reports them as unexpected.
/// </summary>
internal static class HuggingFaceVitMapping
{
    private const string PatchKey = "embeddings.patch_embeddings.projection.weight";

    /// <summary>The prefix ("vit." or "") under which the ViT body is stored, or null if this is not an HF ViT.</summary>
    public static string? DetectPrefix(IReadOnlyCollection<string> keys) =>
        keys.Contains("vit." + PatchKey) ? "vit." : keys.Contains(PatchKey) ? "" : null;

    private static readonly Dictionary<string, string> BlockSuffixes = new()
    {
        ["layernorm_before"] = "norm1",
        ["attention.output.dense"] = "attn.proj",
        ["layernorm_after"] = "norm2",
        ["intermediate.dense"] = "mlp.fc1",
        ["output.dense"] = "mlp.fc2",
    };

    /// <summary>Consumes <paramref name="source"/>: fused inputs are disposed.</summary>
    public static Dictionary<string, Tensor> Map(Dictionary<string, Tensor> source, string prefix, string path, List<string> notes)
    {
        var top = new Dictionary<string, string>
        {
            [prefix + "embeddings.cls_token"] = "cls_token",
            [prefix + "embeddings.position_embeddings"] = "pos_embed",
            [prefix + PatchKey] = "patch_embed.proj.weight",
            [prefix + "embeddings.patch_embeddings.projection.bias"] = "patch_embed.proj.bias",
            [prefix + "layernorm.weight"] = "norm.weight",
            [prefix + "layernorm.bias"] = "norm.bias",
            ["classifier.weight"] = "head.weight",
            ["classifier.bias"] = "head.bias",
        };
        var layer = new Regex("^" + Regex.Escape(prefix) + @"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$");

        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        // (block, "weight"|"bias") -> [q, k, v]
        var qkv = new SortedDictionary<(int Block, string Kind), Tensor?[]>();
        var unmapped = new List<string>();
        foreach (var (key, tensor) in source)
        {
            if (top.TryGetValue(key, out var name)) { result[name] = tensor; continue; }
            var m = layer.Match(key);
            if (m.Success)
            {
                var block = int.Parse(m.Groups[1].Value);
                var module = m.Groups[2].Value;
                var kind = m.Groups[3].Value;
                var qkvIndex = module switch
                {
                    "attention.attention.query" => 0,
                    "attention.attention.key" => 1,
                    "attention.attention.value" => 2,
                    _ => -1,
                };
                if (qkvIndex >= 0)
                {
                    if (!qkv.TryGetValue((block, kind), out var parts)) qkv[(block, kind)] = parts = new Tensor?[3];
                    parts[qkvIndex] = tensor;
                    continue;
                }
                if (BlockSuffixes.TryGetValue(module, out var timmModule))
                {
                    result[$"blocks.{block}.{timmModule}.{kind}"] = tensor;
                    continue;
                }
            }
            result[key] = tensor;
            unmapped.Add(key);
        }

        foreach (var ((block, kind), parts) in qkv)
        {
            if (parts.Any(p => p is null))
                throw ContinualMoEException.ForFile(path,
                    $"Hugging Face ViT layer {block} has only some of attention query/key/value.{kind}; cannot build qkv");
            result[$"blocks.{block}.attn.qkv.{kind}"] = cat(parts!, 0);
            foreach (var p in parts) p!.Dispose();
        }

        if (unmapped.Count > 0) notes.Add($"kept {unmapped.Count} key(s) with no timm name: {string.Join(", ", unmapped.Take(4))}{(unmapped.Count > 4 ? ", ..." : "")}");
        return result;
    }
}
