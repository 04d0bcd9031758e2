using System.IO.Compression;
using static TorchSharp.torch;

namespace ContinualMoE.Checkpoints;

/// <summary>
/// Reads a pretrained ViT checkpoint in any supported container (safetensors, npz) and naming scheme
/// (timm, Hugging Face transformers, Google JAX), returning tensors under timm's VisionTransformer names.
/// </summary>
public static class CheckpointReader
{
    /// <returns>The tensors (owned by the caller) and a one-line description of what was read, e.g.
    /// "safetensors, Hugging Face transformers ViT, 12 blocks".</returns>
    public static (Dictionary<string, Tensor> Tensors, string FormatDescription) ReadTimmStateDict(string path)
    {
        var checkpoint = Read(path);
        return (checkpoint.Tensors, checkpoint.FormatDescription);
    }

    /// <summary>
    /// Reads a weights file, or a transformers model folder (model.safetensors beside config.json), with the geometry the
    /// checkpoint determines. A config.json is read for a folder, or beside a file in transformers layout.
    /// </summary>
    public static Checkpoint Read(string path)
    {
        var file = Directory.Exists(path) ? WeightsFileIn(path) : path;
        var (tensors, description, heads, transformers) = ReadFile(file);
        try
        {
            var geometry = CheckpointGeometry.FromTensors(tensors, heads, file);
            var configPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file))!, "config.json");
            if ((Directory.Exists(path) || transformers) && File.Exists(configPath))
            {
                geometry = geometry.WithTransformersConfig(configPath);
                description += "; geometry from config.json";
            }
            return new Checkpoint(tensors, description, geometry, file);
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>The weights file of a model folder: model.safetensors, else the folder's only .safetensors or .npz file.</summary>
    private static string WeightsFileIn(string folder)
    {
        var preferred = Path.Combine(folder, "model.safetensors");
        if (File.Exists(preferred)) return preferred;
        if (File.Exists(Path.Combine(folder, "model.safetensors.index.json")))
            throw ContinualMoEException.ForFile(folder, "sharded checkpoints (model.safetensors.index.json) are not supported; save the model as one model.safetensors");
        var candidates = Directory.GetFiles(folder, "*.safetensors").Concat(Directory.GetFiles(folder, "*.npz")).ToList();
        return candidates.Count switch
        {
            1 => candidates[0],
            0 => throw ContinualMoEException.ForFile(folder, "model folder has no model.safetensors (or other .safetensors / .npz file)"),
            _ => throw ContinualMoEException.ForFile(folder,
                $"model folder has {candidates.Count} weights files and no model.safetensors; pass the file itself as the weights"),
        };
    }

    private static (Dictionary<string, Tensor> Tensors, string Description, int? Heads, bool Transformers) ReadFile(string path)
    {
        if (!File.Exists(path)) throw ContinualMoEException.ForFile(path, "file not found");

        var container = DetectContainer(path);
        var raw = container == "npz" ? NpzArchive.Read(path) : SafeTensorsFile.Read(path);
        try
        {
            var notes = new List<string>();
            var tensors = TimmVitNames.StripWrapperPrefixes(raw, notes);
            string layout;
            int? heads = null;
            var transformers = false;
            if (TimmVitNames.IsTimmLayout(tensors.Keys))
            {
                layout = "timm ViT";
            }
            else if (HuggingFaceVitMapping.DetectPrefix(tensors.Keys) is { } prefix)
            {
                tensors = HuggingFaceVitMapping.Map(tensors, prefix, path, notes);
                layout = "Hugging Face transformers ViT";
                transformers = true;
            }
            else if (JaxVitMapping.IsJaxLayout(tensors.Keys))
            {
                tensors = JaxVitMapping.Map(tensors, path, notes, out var jaxHeads);
                layout = "Google JAX ViT" + (jaxHeads > 0 ? $", {jaxHeads} heads" : "");
                heads = jaxHeads;
            }
            else
            {
                var sample = string.Join(", ", tensors.Keys.OrderBy(k => k, StringComparer.Ordinal).Take(5));
                throw ContinualMoEException.ForFile(path,
                    $"unrecognised checkpoint layout (not timm, Hugging Face or JAX ViT names); {tensors.Count} keys such as: {sample}");
            }
            raw = tensors;
            var description = $"{container}, {layout}, {TimmVitNames.CountBlocks(tensors.Keys)} blocks";
            if (notes.Count > 0) description += "; " + string.Join("; ", notes);
            return (tensors, description, heads, transformers);
        }
        catch
        {
            foreach (var t in raw.Values) if (!t.IsInvalid) t.Dispose();
            throw;
        }
    }

    /// <summary>Decides by content, not extension: a zip is an npz, a JSON header after 8 bytes is safetensors.</summary>
    private static string DetectContainer(string path)
    {
        var head = new byte[9];
        int count;
        using (var stream = File.OpenRead(path)) count = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);

        if (count >= 4 && head[0] == (byte)'P' && head[1] == (byte)'K' && head[2] is 3 or 5)
        {
            if (IsTorchPickleZip(path))
                throw ContinualMoEException.ForFile(path,
                    "PyTorch pickle checkpoints (torch.save .pth/.bin) are not supported; convert to safetensors (safetensors.torch.save_file)");
            return "npz";
        }
        if ((count == 9 && head[8] == (byte)'{') || path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            return "safetensors";
        throw ContinualMoEException.ForFile(path, "unrecognised checkpoint file: neither safetensors nor npz (zip)");
    }

    private static bool IsTorchPickleZip(string path)
    {
        try
        {
            using var zip = ZipFile.OpenRead(path);
            return zip.Entries.Any(e => e.FullName.EndsWith("data.pkl", StringComparison.Ordinal));
        }
        catch (InvalidDataException)
        {
            return false; // NpzArchive reports the broken zip
        }
    }
}

/// <summary>A checkpoint read under timm names: the tensors (owned by the caller), a one-line description, the geometry
/// the checkpoint determines, and the weights file actually read.</summary>
public sealed record Checkpoint(Dictionary<string, Tensor> Tensors, string FormatDescription, CheckpointGeometry Geometry, string WeightsFile);
