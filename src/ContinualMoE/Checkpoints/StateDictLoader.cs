using static TorchSharp.torch;

namespace ContinualMoE.Checkpoints;

/// <summary>Copies named tensors into a module's parameters and buffers, and saves a module's state to safetensors.</summary>
public static class StateDictLoader
{
    private const string PositionEmbedding = "pos_embed";
    private static readonly string[] HeadNames = { "head.weight", "head.bias" };

    /// <summary>
    /// Copies every tensor whose name and shape match into the module, in place and without tracking gradients,
    /// converting to the module's dtype and device. A classifier head of another size is skipped (see
    /// <see cref="LoadOptions.SkipMismatchedHead"/>); any other shape mismatch throws unless allowed.
    /// The caller keeps ownership of <paramref name="tensors"/>.
    /// </summary>
    public static LoadReport Load(nn.Module module, IReadOnlyDictionary<string, Tensor> tensors, LoadOptions? options = null)
    {
        options ??= LoadOptions.Default;
        var targets = module.state_dict();
        var loaded = new List<string>();
        var missing = new List<string>();
        var mismatches = new List<ShapeMismatch>();
        var messages = new List<string>();
        var sources = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var resizedPositionEmbedding = false;
        var ownedResized = new List<Tensor>();

        try
        {
            foreach (var (name, target) in targets)
            {
                if (!tensors.TryGetValue(name, out var source)) { missing.Add(name); continue; }
                if (source.shape.SequenceEqual(target.shape)) { sources[name] = source; continue; }

                if (name == PositionEmbedding && options.PositionEmbeddingResizer is { } resize)
                {
                    var resized = resize(source, target.shape);
                    if (!ReferenceEquals(resized, source)) ownedResized.Add(resized);
                    if (!resized.shape.SequenceEqual(target.shape))
                        throw new ContinualMoEException(
                            $"position embedding resizer returned [{string.Join(", ", resized.shape)}] for target [{string.Join(", ", target.shape)}]");
                    sources[name] = resized;
                    resizedPositionEmbedding = true;
                    messages.Add($"resized pos_embed from [{string.Join(", ", source.shape)}] to [{string.Join(", ", target.shape)}]");
                    continue;
                }
                mismatches.Add(new ShapeMismatch(name, target.shape, source.shape));
            }

            var headMismatches = mismatches.Where(m => HeadNames.Contains(m.Name)).ToList();
            var skippedHead = options.SkipMismatchedHead && headMismatches.Count > 0;
            if (skippedHead)
            {
                // Weight and bias belong together: keep the module's whole head even if only one differs.
                foreach (var head in HeadNames) sources.Remove(head);
                messages.Add($"skipped classifier head: {string.Join("; ", headMismatches)} (the module keeps its own head)");
            }
            var blocking = mismatches.Where(m => !(skippedHead && HeadNames.Contains(m.Name))).ToList();
            if (blocking.Count > 0 && !options.AllowShapeMismatches)
                throw new ContinualMoEException(
                    $"checkpoint shapes do not fit the model: {string.Join("; ", blocking.Take(6))}{(blocking.Count > 6 ? "; ..." : "")}");

            using (no_grad())
            {
                foreach (var (name, source) in sources)
                {
                    targets[name].copy_(source);
                    loaded.Add(name);
                }
            }

            return new LoadReport
            {
                Loaded = loaded,
                Missing = missing,
                Unexpected = tensors.Keys.Where(k => !targets.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList(),
                ShapeMismatches = mismatches,
                SkippedHead = skippedHead,
                ResizedPositionEmbedding = resizedPositionEmbedding,
                Messages = messages,
            };
        }
        finally
        {
            foreach (var t in ownedResized) t.Dispose();
        }
    }

    /// <summary>
    /// Streams a (possibly sharded) safetensors checkpoint into the module, one tensor at a time, so that loading
    /// needs the module's memory plus one tensor (see <see cref="SafeTensorsFile.ReadInto"/>). Names and shapes are
    /// checked from the headers before any data is read. <paramref name="rename"/> maps a checkpoint name to the
    /// module's name, or to null for a tensor known to be unused (it is then neither loaded nor reported unexpected).
    /// Shape mismatches throw unless <see cref="LoadOptions.AllowShapeMismatches"/>.
    /// </summary>
    public static LoadReport Load(nn.Module module, SafeTensorsCheckpoint checkpoint, Func<string, string?>? rename = null, LoadOptions? options = null)
    {
        options ??= LoadOptions.Default;
        rename ??= name => name;
        var targets = module.state_dict();
        var mismatches = new List<ShapeMismatch>();
        var unexpected = new List<string>();
        var ignored = 0;
        var plan = new Dictionary<(string File, string Name), Tensor>();
        var filled = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (file, entry) in checkpoint.Tensors)
        {
            var target = rename(entry.Name);
            if (target is null) { ignored++; continue; }
            if (!targets.TryGetValue(target, out var tensor)) { unexpected.Add(entry.Name); continue; }
            if (!tensor.shape.SequenceEqual(entry.Shape)) { mismatches.Add(new ShapeMismatch(target, tensor.shape, entry.Shape)); continue; }
            if (!filled.Add(target))
                throw ContinualMoEException.ForFile(file, $"tensor '{entry.Name}' fills '{target}', which another tensor of the checkpoint already fills");
            plan[(file, entry.Name)] = tensor;
        }
        if (mismatches.Count > 0 && !options.AllowShapeMismatches)
            throw new ContinualMoEException(
                $"checkpoint shapes do not fit the model: {string.Join("; ", mismatches.Take(6))}{(mismatches.Count > 6 ? "; ..." : "")}");

        foreach (var file in checkpoint.Files)
            SafeTensorsFile.ReadInto(file, entry => plan.GetValueOrDefault((file, entry.Name)), options.MemoryMap);

        var messages = new List<string>();
        if (ignored > 0) messages.Add($"ignored {ignored} tensors the model computes or shares (masks, tied head, rotary frequencies)");
        return new LoadReport
        {
            Loaded = filled.Order(StringComparer.Ordinal).ToList(),
            Missing = targets.Keys.Where(k => !filled.Contains(k)).ToList(),
            Unexpected = unexpected.Order(StringComparer.Ordinal).ToList(),
            ShapeMismatches = mismatches,
            Messages = messages,
        };
    }

    /// <summary>Writes the module's parameters and buffers (its state_dict) to a safetensors file, atomically.</summary>
    public static void Save(nn.Module module, string path, IReadOnlyDictionary<string, string>? metadata = null) =>
        SafeTensorsFile.Write(path, module.state_dict(), metadata);
}
