using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace ContinualMoE.Checkpoints;

/// <summary>
/// Converts Google's original JAX/Flax ViT checkpoints (e.g. ViT-B_16.npz) to timm names and layouts.
/// Flax Dense kernels are [in, out] while torch Linear weights are [out, in], hence the transposes; attention kernels
/// keep heads as a separate axis ([D, H, hd] for q/k/v, [H, hd, D] for out), which is flattened first.
/// The pre_logits layer (a representation layer of some 21k checkpoints) has no counterpart in timm's ViT and is dropped.
/// </summary>
internal static partial class JaxVitMapping
{
    public static bool IsJaxLayout(IReadOnlyCollection<string> keys) =>
        keys.Contains("embedding/kernel") && keys.Any(k => k.StartsWith("Transformer/", StringComparison.Ordinal));

    /// <summary>Consumes <paramref name="source"/>: inputs that are reshaped or fused are disposed.</summary>
    public static Dictionary<string, Tensor> Map(Dictionary<string, Tensor> source, string path, List<string> notes, out int heads)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var qkv = new SortedDictionary<(int Block, string Kind), Tensor?[]>();
        var ignored = new List<string>();
        heads = 0;

        ContinualMoEException Bad(string key, Tensor t, string expected) =>
            ContinualMoEException.ForFile(path, $"'{key}' has shape [{string.Join(", ", t.shape)}], expected {expected}");

        // Linear kernel [in, out] -> weight [out, in].
        Tensor Linear(string key, Tensor t)
        {
            if (t.dim() != 2) throw Bad(key, t, "a 2-d [in, out] kernel");
            using (t) return t.t().contiguous();
        }

        foreach (var (key, tensor) in source)
        {
            switch (key)
            {
                case "cls": result["cls_token"] = tensor; continue;
                case "Transformer/posembed_input/pos_embedding": result["pos_embed"] = tensor; continue;
                case "embedding/kernel":
                    if (tensor.dim() != 4) throw Bad(key, tensor, "[p, p, 3, D] (HWIO)");
                    using (tensor) result["patch_embed.proj.weight"] = tensor.permute(3, 2, 0, 1).contiguous();
                    continue;
                case "embedding/bias": result["patch_embed.proj.bias"] = tensor; continue;
                case "Transformer/encoder_norm/scale": result["norm.weight"] = tensor; continue;
                case "Transformer/encoder_norm/bias": result["norm.bias"] = tensor; continue;
                case "head/kernel": result["head.weight"] = Linear(key, tensor); continue;
                case "head/bias": result["head.bias"] = tensor; continue;
            }
            if (key.StartsWith("pre_logits/", StringComparison.Ordinal))
            {
                ignored.Add(key);
                tensor.Dispose();
                continue;
            }

            var m = BlockPattern().Match(key);
            if (!m.Success)
            {
                result[key] = tensor; // no timm counterpart: left for the loader to report as unexpected
                continue;
            }
            var block = int.Parse(m.Groups[1].Value);
            var rest = m.Groups[2].Value;
            var prefix = $"blocks.{block}.";
            switch (rest)
            {
                case "LayerNorm_0/scale": result[prefix + "norm1.weight"] = tensor; break;
                case "LayerNorm_0/bias": result[prefix + "norm1.bias"] = tensor; break;
                case "LayerNorm_2/scale": result[prefix + "norm2.weight"] = tensor; break;
                case "LayerNorm_2/bias": result[prefix + "norm2.bias"] = tensor; break;
                case "MlpBlock_3/Dense_0/kernel": result[prefix + "mlp.fc1.weight"] = Linear(key, tensor); break;
                case "MlpBlock_3/Dense_0/bias": result[prefix + "mlp.fc1.bias"] = tensor; break;
                case "MlpBlock_3/Dense_1/kernel": result[prefix + "mlp.fc2.weight"] = Linear(key, tensor); break;
                case "MlpBlock_3/Dense_1/bias": result[prefix + "mlp.fc2.bias"] = tensor; break;
                case "MultiHeadDotProductAttention_1/out/kernel":
                    // [H, hd, D] -> [D_in = H*hd, D_out] -> torch [D_out, D_in].
                    if (tensor.dim() != 3) throw Bad(key, tensor, "[heads, head_dim, D]");
                    using (tensor) result[prefix + "attn.proj.weight"] = tensor.reshape(-1, tensor.shape[2]).t().contiguous();
                    break;
                case "MultiHeadDotProductAttention_1/out/bias": result[prefix + "attn.proj.bias"] = tensor; break;
                default:
                    var a = AttentionPattern().Match(rest);
                    if (!a.Success) { result[key] = tensor; break; }
                    var index = a.Groups[1].Value switch { "query" => 0, "key" => 1, _ => 2 };
                    var kind = a.Groups[2].Value;
                    Tensor converted;
                    if (kind == "kernel")
                    {
                        // [D, H, hd] -> [D_in, D_out = H*hd] -> torch [D_out, D_in].
                        if (tensor.dim() != 3) throw Bad(key, tensor, "[D, heads, head_dim]");
                        if (index == 0 && block == 0) heads = (int)tensor.shape[1];
                        using (tensor) converted = tensor.reshape(tensor.shape[0], -1).t().contiguous();
                    }
                    else
                    {
                        if (tensor.dim() != 2) throw Bad(key, tensor, "[heads, head_dim]");
                        using (tensor) converted = tensor.reshape(-1).contiguous();
                    }
                    var slot = (block, kind == "kernel" ? "weight" : "bias");
                    if (!qkv.TryGetValue(slot, out var parts)) qkv[slot] = parts = new Tensor?[3];
                    parts[index] = converted;
                    break;
            }
        }

        foreach (var ((block, kind), parts) in qkv)
        {
            if (parts.Any(p => p is null))
                throw ContinualMoEException.ForFile(path, $"JAX ViT encoderblock_{block} has only some of query/key/value {kind}; cannot build qkv");
            result[$"blocks.{block}.attn.qkv.{kind}"] = cat(parts!, 0);
            foreach (var p in parts) p!.Dispose();
        }

        if (ignored.Count > 0) notes.Add($"ignored {string.Join(", ", ignored.OrderBy(k => k, StringComparer.Ordinal))} (timm's ViT has no pre-logits layer)");
        return result;
    }

    [GeneratedRegex(@"^Transformer/encoderblock_(\d+)/(.+)$")]
    private static partial Regex BlockPattern();

    [GeneratedRegex(@"^MultiHeadDotProductAttention_1/(query|key|value)/(kernel|bias)$")]
    private static partial Regex AttentionPattern();
}
