namespace ContinualMoE.Checkpoints;

/// <summary>Recognises checkpoints already named like timm's VisionTransformer, and the wrappers around them.</summary>
internal static class TimmVitNames
{
    /// <summary>Prefixes added by DataParallel/DDP ("module.") or training wrappers ("model.").</summary>
    private static readonly string[] WrapperPrefixes = { "module.", "model." };

    /// <summary>Removes a wrapper prefix when every key has it (repeatedly, for "module.model." and the like).</summary>
    public static Dictionary<string, T> StripWrapperPrefixes<T>(Dictionary<string, T> tensors, List<string> notes)
    {
        var changed = true;
        while (changed && tensors.Count > 0)
        {
            changed = false;
            foreach (var prefix in WrapperPrefixes)
            {
                if (!tensors.Keys.All(k => k.StartsWith(prefix, StringComparison.Ordinal))) continue;
                tensors = tensors.ToDictionary(p => p.Key[prefix.Length..], p => p.Value, StringComparer.Ordinal);
                notes.Add($"stripped prefix '{prefix}'");
                changed = true;
            }
        }
        return tensors;
    }

    public static bool IsTimmLayout(IReadOnlyCollection<string> keys) =>
        keys.Contains("patch_embed.proj.weight") || (keys.Contains("cls_token") && keys.Any(k => k.StartsWith("blocks.", StringComparison.Ordinal)));

    /// <summary>Number of transformer blocks, counted from "blocks.{i}." keys.</summary>
    public static int CountBlocks(IEnumerable<string> keys)
    {
        var max = -1;
        foreach (var key in keys)
        {
            if (!key.StartsWith("blocks.", StringComparison.Ordinal)) continue;
            var end = key.IndexOf('.', 7);
            if (end > 7 && int.TryParse(key.AsSpan(7, end - 7), out var i)) max = Math.Max(max, i);
        }
        return max + 1;
    }
}
