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
        if (!File.Exists(path)) throw ContinualMoEException.ForFile(path, "file not found");

        var container = DetectContainer(path);
        var raw = container == "npz" ? NpzArchive.Read(path) : SafeTensorsFile.Read(path);
        try
        {
            var notes = new List<string>();
            var tensors = TimmVitNames.StripWrapperPrefixes(raw, notes);
            string layout;
            if (TimmVitNames.IsTimmLayout(tensors.Keys))
            {
                layout = "timm ViT";
            }
            else if (HuggingFaceVitMapping.DetectPrefix(tensors.Keys) is { } prefix)
            {
                tensors = HuggingFaceVitMapping.Map(tensors, prefix, path, notes);
                layout = "Hugging Face transformers ViT";
            }
            else if (JaxVitMapping.IsJaxLayout(tensors.Keys))
            {
                tensors = JaxVitMapping.Map(tensors, path, notes, out var heads);
                layout = "Google JAX ViT" + (heads > 0 ? $", {heads} heads" : "");
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
            return (tensors, description);
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
