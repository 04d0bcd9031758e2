using System.IO.Compression;
using static TorchSharp.torch;

namespace ContinualMoE.Checkpoints;

/// <summary>
/// Reads NumPy <c>.npz</c> archives (<c>np.savez</c> and <c>np.savez_compressed</c>): a zip of <c>.npy</c> arrays,
/// keyed by entry name without the <c>.npy</c> suffix.
/// </summary>
public static class NpzArchive
{
    public static Dictionary<string, Tensor> Read(string path)
    {
        if (!File.Exists(path)) throw ContinualMoEException.ForFile(path, "file not found");
        ZipArchive zip;
        try
        {
            zip = ZipFile.OpenRead(path);
        }
        catch (InvalidDataException e)
        {
            throw ContinualMoEException.ForFile(path, $"not a valid .npz (zip) archive: {e.Message}", e);
        }
        catch (IOException e)
        {
            throw ContinualMoEException.ForFile(path, $"cannot open: {e.Message}", e);
        }

        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using (zip)
        {
            try
            {
                foreach (var entry in zip.Entries)
                {
                    if (entry.FullName.EndsWith('/')) continue; // directory entry
                    var key = entry.FullName.EndsWith(".npy", StringComparison.Ordinal) ? entry.FullName[..^4] : entry.FullName;
                    var where = $"{path}: entry '{entry.FullName}'";
                    try
                    {
                        using var stream = entry.Open();
                        var tensor = NpyReader.Read(stream, where);
                        if (!tensors.TryAdd(key, tensor))
                        {
                            tensor.Dispose();
                            throw new ContinualMoEException($"{where}: duplicate array name '{key}'");
                        }
                    }
                    catch (InvalidDataException e)
                    {
                        // Corrupt compressed data or a CRC mismatch.
                        throw new ContinualMoEException($"{where}: corrupt zip data: {e.Message}", e);
                    }
                }
            }
            catch
            {
                foreach (var t in tensors.Values) t.Dispose();
                throw;
            }
        }
        return tensors;
    }
}
